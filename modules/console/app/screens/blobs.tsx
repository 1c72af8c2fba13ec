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

/** Types the browser shows inline as an image; the server serves them `inline` too. */
const PREVIEWABLE = /^image\/(png|jpeg|gif|webp|avif)$/;

export function BlobsScreen() {
  const blobs = usePages('blobs', async (after) => (await client.query(BlobsDocument, { after })).blobs, []);
  const upload = useAction();
  const remove = useAction();
  const [progress, setProgress] = useState<{ loaded: number; total: number } | null>(null);
  const [notice, setNotice] = useState('');
  const input = useRef<HTMLInputElement>(null);

  return (
    <>
      <Heading title="Blobs">Blobs</Heading>
      <form
        class="card"
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
        <h2 id="upload-heading">Upload</h2>
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

      <h2>Stored blobs</h2>
      <ProblemNote problem={blobs.problem ?? remove.problem} />
      <ListState loading={blobs.loading && !blobs.data} empty={blobs.items.length === 0}>
        No blobs yet.
      </ListState>
      {blobs.items.length > 0 ? (
        <ul class="blobs">
          {blobs.items.map((blob) => {
            const name = blob.filename ?? blob.id;
            return (
              <li key={blob.id} class="card">
                {PREVIEWABLE.test(blob.contentType) ? (
                  <img src={blob.url} alt={`Preview of ${name}`} loading="lazy" />
                ) : (
                  <span class="placeholder" aria-hidden="true">
                    {blob.contentType.split('/')[1] ?? 'file'}
                  </span>
                )}
                <div>
                  <p class="name">{name}</p>
                  <p class="note">
                    {blob.contentType}, {formatBytes(blob.size)}
                    {blob.owner ? `, by ${blob.owner.email}` : ''}, <Time value={blob.createdAt} />
                  </p>
                  <p class="note">
                    SHA-256 <code>{blob.sha256.slice(0, 16)}…</code>
                  </p>
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
                      label={`Delete ${name}`}
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
