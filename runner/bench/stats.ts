/** Latency statistics and the benchmark's Markdown and SVG renderings. */
export interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  min: number;
  max: number;
}

const round = (x: number) => Math.round(x * 10) / 10;

export function summarize(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const pick = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
  return {
    n: s.length,
    p50: round(pick(50)),
    p95: round(pick(95)),
    p99: round(pick(99)),
    min: round(s[0] ?? 0),
    max: round(s[s.length - 1] ?? 0),
  };
}

export interface LatencyRow {
  name: string;
  summary: Summary;
}

export interface ThroughputRow {
  /** The runner's settings when they differ from the sweep's (e.g. "defaults, runsc"). */
  setup?: string;
  concurrency: number;
  users: number;
  requests: number;
  runsPerSecond: number;
  p50: number;
  p95: number;
  errors: number;
}

/** 1, 2 or 5 times a power of ten, at least `raw`. */
function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
  return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= raw) ?? 10 * p;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** Two panels: p50 latency by scenario (log scale, p95 as a whisker) and warm throughput by concurrency. */
export function renderSvg(title: string, latency: LatencyRow[], throughput: ThroughputRow[]): string {
  const W = 960;
  const H = 380;
  const pad = { top: 56, bottom: 60, left: 50, right: 20 };
  const gap = 80;
  const panelW = (W - pad.left - pad.right - gap) / 2;
  const plotH = H - pad.top - pad.bottom;
  const base = pad.top + plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">${esc(title)}</text>`,
  ];
  const label = (x: number, yy: number, text: string, extra = '') =>
    out.push(`<text x="${x}" y="${yy}" text-anchor="middle"${extra}>${esc(text)}</text>`);

  // Panel 1: latency on a log10 scale from 1 ms to the power of ten above the largest p95.
  const x0 = pad.left;
  const top = 10 ** Math.ceil(Math.log10(Math.max(...latency.map((r) => r.summary.p95), 10)));
  const y = (v: number) => base - (Math.log10(Math.max(v, 1)) / Math.log10(top)) * plotH;
  label(
    x0 + panelW / 2,
    44,
    'Latency: p50 (bar, value) and p95 (whisker), ms, log scale',
    ' font-weight="600"',
  );
  for (let v = 1; v <= top; v *= 10) {
    out.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${x0 - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  const bw = panelW / latency.length;
  latency.forEach((r, i) => {
    const w = bw * 0.6;
    const cx = x0 + i * bw + bw / 2;
    const yb = y(r.summary.p50);
    const yw = y(r.summary.p95);
    const color = r.name.startsWith('old system') ? '#c0392b' : '#2e86de';
    out.push(`<rect x="${cx - w / 2}" y="${yb}" width="${w}" height="${base - yb}" fill="${color}"/>`);
    out.push(`<line x1="${cx}" x2="${cx}" y1="${yw}" y2="${yb}" stroke="#333"/>`);
    out.push(`<line x1="${cx - w * 0.2}" x2="${cx + w * 0.2}" y1="${yw}" y2="${yw}" stroke="#333"/>`);
    label(cx, yw - 6, String(r.summary.p50), ' font-weight="600"');
    // Names like "runner, warm (same user)" go on two lines, split at the comma.
    r.name.split(', ').forEach((part, k) => label(cx, base + 16 + k * 14, part));
  });

  // Panel 2: throughput.
  const x1 = pad.left + panelW + gap;
  const maxT = Math.max(...throughput.map((r) => r.runsPerSecond), 1);
  const step = niceStep(maxT / 4);
  const topT = Math.ceil((maxT * 1.1) / step) * step;
  const yt = (v: number) => base - (v / topT) * plotH;
  label(
    x1 + panelW / 2,
    44,
    `Warm runs per second by concurrency (${throughput[0]?.users ?? 0} users)`,
    ' font-weight="600"',
  );
  for (let v = 0; v <= topT; v += step) {
    out.push(`<line x1="${x1}" x2="${x1 + panelW}" y1="${yt(v)}" y2="${yt(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${x1 - 6}" y="${yt(v) + 4}" text-anchor="end">${v}</text>`);
  }
  const tw = panelW / Math.max(throughput.length, 1);
  throughput.forEach((r, i) => {
    const w = tw * 0.6;
    const cx = x1 + i * tw + tw / 2;
    const yb = yt(r.runsPerSecond);
    out.push(`<rect x="${cx - w / 2}" y="${yb}" width="${w}" height="${base - yb}" fill="#27ae60"/>`);
    label(cx, yb - 6, String(Math.round(r.runsPerSecond)), ' font-weight="600"');
    label(cx, base + 16, `concurrency ${r.concurrency}`);
    label(cx, base + 30, `p50 ${r.p50} ms`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

export function renderMarkdown(latency: LatencyRow[], throughput: ThroughputRow[]): string {
  const lines = [
    '| scenario | n | p50 ms | p95 ms | p99 ms | min | max |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of latency) {
    const s = r.summary;
    lines.push(`| ${r.name} | ${s.n} | ${s.p50} | ${s.p95} | ${s.p99} | ${s.min} | ${s.max} |`);
  }
  lines.push(
    '',
    '| setup | concurrency | users | requests | runs/s | p50 ms | p95 ms | errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const t of throughput) {
    lines.push(
      `| ${t.setup ?? 'sweep'} | ${t.concurrency} | ${t.users} | ${t.requests} | ${t.runsPerSecond} | ${t.p50} | ${t.p95} | ${t.errors} |`,
    );
  }
  return lines.join('\n') + '\n';
}
