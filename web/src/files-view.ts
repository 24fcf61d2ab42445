/**
 * The workspace's files (the files API): the listing, a download per file, upload and delete.
 * Contents travel base64 in the callables (at most FILE_MAX_BYTES a file).
 */
import { FILE_MAX_BYTES } from '@agent-platform/contract';
import { callables } from './api.ts';
import { byId, h } from './dom.ts';
import { callableErrorMessage } from './errors.ts';

const sizes = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${sizes.format(bytes / 1024)} KiB`;
  return `${sizes.format(bytes / 1024 / 1024)} MiB`;
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export class FilesView {
  readonly #el = {
    status: byId('files-status'),
    list: byId<HTMLUListElement>('file-list'),
    upload: byId<HTMLInputElement>('file-upload'),
    refresh: byId<HTMLButtonElement>('refresh-files'),
  };
  #request = 0;

  constructor() {
    this.#el.refresh.addEventListener('click', () => void this.load());
    this.#el.upload.addEventListener('change', () => void this.#upload());
  }

  #say(text: string): void {
    this.#el.status.textContent = text;
    this.#el.status.hidden = text === '';
  }

  stop(): void {
    this.#request++;
    this.#el.list.replaceChildren();
  }

  async load(): Promise<void> {
    const request = ++this.#request;
    this.#el.refresh.disabled = true;
    try {
      const { files, truncated } = (await callables.listFiles()).data;
      if (request !== this.#request) return;
      const shown = files.filter((f) => f.type === 'file');
      this.#say(
        shown.length === 0
          ? 'No files yet. Upload one, or ask the agent to write one.'
          : truncated
            ? 'Showing the first files only.'
            : '',
      );
      this.#el.list.replaceChildren(
        ...shown.map((f) =>
          h(
            'li',
            { class: 'file', 'data-path': f.path },
            h('span', { class: 'file-path' }, f.path),
            h('span', { class: 'file-size' }, size(f.size)),
            h(
              'span',
              { class: 'row' },
              h(
                'button',
                { type: 'button', class: 'small', onclick: () => void this.#download(f.path) },
                'Download',
              ),
              h(
                'button',
                { type: 'button', class: 'small danger', onclick: () => void this.#delete(f.path) },
                'Delete',
              ),
            ),
          ),
        ),
      );
    } catch (err) {
      if (request === this.#request) this.#say(`Couldn't list your files. ${callableErrorMessage(err)}`);
    } finally {
      if (request === this.#request) this.#el.refresh.disabled = false;
    }
  }

  async #download(path: string): Promise<void> {
    try {
      const { contentBase64 } = (await callables.downloadFile({ path })).data;
      const url = URL.createObjectURL(new Blob([fromBase64(contentBase64)]));
      const a = h('a', { href: url, download: path.split('/').pop() ?? 'file' });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      this.#say(`Couldn't download ${path}. ${callableErrorMessage(err)}`);
    }
  }

  async #delete(path: string): Promise<void> {
    try {
      await callables.deleteFile({ path });
      await this.load();
    } catch (err) {
      this.#say(`Couldn't delete ${path}. ${callableErrorMessage(err)}`);
    }
  }

  async #upload(): Promise<void> {
    const file = this.#el.upload.files?.[0];
    this.#el.upload.value = '';
    if (!file) return;
    if (file.size > FILE_MAX_BYTES) {
      this.#say(`${file.name} is larger than ${size(FILE_MAX_BYTES)}, the most a file may have.`);
      return;
    }
    this.#say(`Uploading ${file.name}…`);
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      await callables.uploadFile({ path: file.name, contentBase64: toBase64(bytes) });
      await this.load();
    } catch (err) {
      this.#say(`Couldn't upload ${file.name}. ${callableErrorMessage(err)}`);
    }
  }
}
