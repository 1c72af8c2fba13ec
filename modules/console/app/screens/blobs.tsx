import { useRef, useState } from 'preact/hooks';
import { BlobsDocument, DeleteBlobDocument } from '../../../../client/index.ts';
import { client } from '../api.ts';
import {
  ConfirmButton,
  formatBytes,
  Heading,
  ListState,
  ProblemNote,
  Time,
  useAction,
  usePages,
} from '../ui.tsx';

/**
 * Types shown as thumbnails: the server serves them `inline` with their own type. Not SVG, which
 * it serves as an opaque download (it could script the page), so an <img> of it shows nothing.
 */
const PREVIEWABLE = /^image\/(png|jpeg|gif|webp|avif)$/;

/** The list's type filter: MIME families, which the server filters by (`contentTypePrefix`). */
const TYPE_FILTERS = [
  { prefix: '', label: 'All types', none: 'No blobs.' },
  { prefix: 'image/', label: 'Images', none: 'No images.' },
  { prefix: 'application/', label: 'Documents and other files', none: 'No documents or other files.' },
  { prefix: 'text/', label: 'Text', none: 'No text files.' },
  { prefix: 'audio/', label: 'Audio', none: 'No audio.' },
  { prefix: 'video/', label: 'Video', none: 'No video.' },
];

const KNOWN_TYPES: Record<string, string> = {
  'application/octet-stream': 'Binary file',
  'application/pdf': 'PDF document',
  'application/zip': 'ZIP archive',
  'application/gzip': 'Gzip archive',
  'application/x-tar': 'Tar archive',
  'application/json': 'JSON file',
  'application/msword': 'Word document',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'Word document',
  'application/vnd.ms-excel': 'Excel spreadsheet',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'Excel spreadsheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'PowerPoint presentation',
  'application/vnd.oasis.opendocument.text': 'OpenDocument text',
  'application/vnd.oasis.opendocument.spreadsheet': 'OpenDocument spreadsheet',
  'text/plain': 'Text file',
  'text/csv': 'CSV file',
  'text/markdown': 'Markdown file',
  'text/html': 'HTML file',
  'image/svg+xml': 'SVG image',
};

const FAMILY_NOUNS: Record<string, string> = {
  image: 'image',
  audio: 'audio',
  video: 'video',
  text: 'text file',
  font: 'font',
};

/** A content type without its parameters, lower-case ("Text/Plain; charset=utf-8" → "text/plain"). */
const essenceOf = (contentType: string) => (contentType.split(';')[0] ?? '').trim().toLowerCase();

/** "image/x-icon" → "ICON": the subtype without its x-, vnd. or +suffix, when that is short. */
function shortSubtype(essence: string) {
  const subtype = (essence.split('/')[1] ?? '').replace(/^(x-|vnd\.)/, '').replace(/\+.*$/, '');
  return /^[a-z0-9]{1,8}$/.test(subtype) ? subtype.toUpperCase() : null;
}

/** What a content type is, in words: "PDF document", "PNG image", "Binary file". */
function describeType(contentType: string) {
  const essence = essenceOf(contentType);
  const known = KNOWN_TYPES[essence];
  if (known) return known;
  const noun = FAMILY_NOUNS[essence.split('/')[0] ?? ''];
  const short = shortSubtype(essence);
  if (noun) return short ? `${short} ${noun}` : `${noun[0]!.toUpperCase()}${noun.slice(1)}`;
  return short ? `${short} file` : 'File';
}

/** The few letters on a file's tile: its extension, else its subtype. */
function tileLabel(filename: string | null | undefined, contentType: string) {
  const extension = /\.([a-z0-9]{1,5})$/i.exec(filename ?? '')?.[1];
  return (extension ?? shortSubtype(essenceOf(contentType)) ?? 'file').toUpperCase();
}

export function BlobsScreen() {
  const [typePrefix, setTypePrefix] = useState('');
  const blobs = usePages(
    'blobs',
    async (after) =>
      (await client.query(BlobsDocument, { after, contentTypePrefix: typePrefix || null })).blobs,
    [typePrefix],
  );
  const upload = useAction();
  const remove = useAction();
  const [progress, setProgress] = useState<{ loaded: number; total: number } | null>(null);
  const [notice, setNotice] = useState('');
  const input = useRef<HTMLInputElement>(null);
  const filter = TYPE_FILTERS.find((option) => option.prefix === typePrefix) ?? TYPE_FILTERS[0]!;
  // Nothing stored at all (not merely nothing of one type): the upload box is the screen.
  const none = !!blobs.data && blobs.items.length === 0 && !typePrefix && blobs.page === 1;

  return (
    <>
      <Heading title="Blobs">Blobs</Heading>
      {none ? (
        <p class="blobs-intro">
          Blobs are files that apps upload here and read back at <code>/blobs/&lt;id&gt;</code>, with the same
          credentials and access rules as the API.
        </p>
      ) : null}
      <form
        class={none ? 'card upload first' : 'card upload'}
        aria-labelledby="upload-heading"
        onSubmit={async (event) => {
          event.preventDefault();
          const file = input.current?.files?.[0];
          if (!file) return;
          setNotice('');
          setProgress({ loaded: 0, total: file.size });
          const done = await upload.run(async () => {
            const blob = await client.uploadBlob(file, {
              filename: file.name,
              contentType: file.type || 'application/octet-stream',
              onProgress: (loaded, total) => setProgress({ loaded, total }),
            });
            setNotice(`Uploaded ${blob.filename ?? file.name} (${formatBytes(blob.size)}).`);
          });
          setProgress(null);
          if (done) {
            if (input.current) input.current.value = '';
            blobs.reload();
          }
        }}
      >
        <h2 id="upload-heading" class={none ? 'upload-first-title' : undefined}>
          {none ? 'Upload your first blob' : 'Upload'}
        </h2>
        <label>
          File
          <input ref={input} type="file" required />
        </label>
        <button type="submit" disabled={upload.busy}>
          Upload
        </button>
        {progress ? (
          <div class="progress">
            <label>
              Upload progress
              <progress max={progress.total || 1} value={progress.loaded} />
            </label>
            <span class="note">
              {formatBytes(progress.loaded)} of {formatBytes(progress.total)}
            </span>
          </div>
        ) : null}
        <ProblemNote problem={upload.problem} />
        <p role="status">{notice}</p>
      </form>

      <ProblemNote problem={blobs.problem ?? remove.problem} />
      {none ? null : (
        <>
          <div class="blob-tools">
            <h2 class="blob-tools-title">Stored blobs</h2>
            {/* Labelled by `for`, not by wrapping: a wrapping label's name takes in the options' text. */}
            <div class="type-filter">
              <label for="blob-type">Type</label>
              <select
                id="blob-type"
                value={typePrefix}
                onChange={(event) => setTypePrefix(event.currentTarget.value)}
              >
                {TYPE_FILTERS.map((option) => (
                  <option key={option.prefix} value={option.prefix}>
                    {option.label}
                  </option>
                ))}
              </select>
            </div>
          </div>
          <ListState loading={blobs.loading && !blobs.data} empty={blobs.items.length === 0}>
            {filter.none}
          </ListState>
        </>
      )}
      {blobs.items.length > 0 ? (
        <ul class="blobs">
          {blobs.items.map((blob) => {
            const name = blob.filename ?? blob.id;
            return (
              <li key={blob.id} class="blob">
                <div class="blob-preview">
                  {PREVIEWABLE.test(essenceOf(blob.contentType)) ? (
                    <img src={blob.url} alt={`Preview of ${name}`} loading="lazy" />
                  ) : (
                    <span aria-hidden="true">{tileLabel(blob.filename, blob.contentType)}</span>
                  )}
                </div>
                <div class="blob-facts">
                  <p class="blob-name" title={name}>
                    {name}
                  </p>
                  <p>
                    <span class="badge">{describeType(blob.contentType)}</span>{' '}
                    <span class="note">{formatBytes(blob.size)}</span>
                  </p>
                  <p class="note">
                    <code>{blob.contentType}</code>
                  </p>
                  <p class="note">
                    Uploaded <Time value={blob.createdAt} />
                    {blob.owner ? ` by ${blob.owner.email}` : ''}
                  </p>
                  <p class="note" title={`SHA-256 ${blob.sha256}`}>
                    SHA-256 <code>{blob.sha256.slice(0, 16)}…</code>
                  </p>
                </div>
                <div class="actions">
                  <a
                    class="button"
                    href={blob.url}
                    download={blob.filename ?? ''}
                    aria-label={`Download ${name}`}
                  >
                    Download
                  </a>
                  <ConfirmButton
                    label="Delete"
                    name={`Delete ${name}`}
                    confirmLabel="Delete"
                    question={`Delete ${name}?`}
                    disabled={remove.busy}
                    onConfirm={() =>
                      remove.run(async () => {
                        await client.mutate(DeleteBlobDocument, { id: blob.id });
                        blobs.reload();
                      })
                    }
                  />
                </div>
              </li>
            );
          })}
        </ul>
      ) : null}
      {blobs.pager}
    </>
  );
}
