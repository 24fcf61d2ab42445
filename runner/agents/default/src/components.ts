/**
 * The one component builder: what either agent asks to show (a `/component` line, a
 * show_component call) becomes a component of the contract's vocabulary, held to its bounds, or
 * nothing. The functions check it again before storing it (storedComponentSchema); building it
 * right here keeps an agent's component from being dropped there.
 */
import {
  BUTTONS_MAX,
  COMPONENT_MAX_JSON_BYTES,
  TABLE_MAX_COLUMNS,
  TABLE_MAX_ROWS,
  componentJsonSize,
  type KnownComponent,
} from '@agent-platform/contract';

export const COMPONENT_TYPES = ['card', 'table', 'buttons'] as const;

/** A component as an agent describes it, before it is held to the vocabulary. */
export type ComponentSpec =
  | { type: 'card'; title: string; body: string }
  | { type: 'table'; columns: readonly string[]; rows: ReadonlyArray<readonly string[]> }
  | { type: 'buttons'; labels: readonly string[] };

/**
 * The component of a spec, or null when it makes none: a card needs a title, a table a column,
 * buttons 1 to BUTTONS_MAX labels, and the whole at most COMPONENT_MAX_JSON_BYTES of JSON.
 * Columns and rows past the table's bounds are dropped; short rows are padded with "".
 */
export function buildComponent(spec: ComponentSpec): KnownComponent | null {
  let component: KnownComponent | null = null;
  switch (spec.type) {
    case 'card':
      if (spec.title !== '') component = { type: 'card', title: spec.title, body: spec.body };
      break;
    case 'table': {
      const columns = spec.columns.slice(0, TABLE_MAX_COLUMNS);
      const rows = spec.rows
        .slice(0, TABLE_MAX_ROWS)
        .map((row) => ({ cells: columns.map((_, i) => row[i] ?? '') }));
      if (columns.length > 0) component = { type: 'table', columns, rows };
      break;
    }
    case 'buttons':
      if (spec.labels.length >= 1 && spec.labels.length <= BUTTONS_MAX) {
        component = { type: 'buttons', buttons: spec.labels.map((label) => ({ label, value: label })) };
      }
      break;
  }
  return component && componentJsonSize(component) <= COMPONENT_MAX_JSON_BYTES ? component : null;
}
