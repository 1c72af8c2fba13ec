import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import {
  ConsoleCollectionsDocument,
  CountDocumentsDocument,
  DeleteDocumentDocument,
  DocumentDocument,
  DocumentsDocument,
  type IndexQuery,
  PutDocumentDocument,
  type SortOrder,
} from '../../../../client/index.ts';
import { client, type Problem } from '../api.ts';
import {
  cellText,
  fieldColumns,
  type JsonObject,
  problemsOf,
  type TextProblem,
  templateOf,
  validatorOf,
  valueAt,
} from '../documents.ts';
import { Link, navigate, segment } from '../router.tsx';
import {
  type Column,
  ConfirmButton,
  DataTable,
  Heading,
  Mistake,
  ProblemNote,
  Time,
  useAction,
  useLoad,
  usePages,
} from '../ui.tsx';

const loadCollections = async () => (await client.query(ConsoleCollectionsDocument, {})).collections;

/** One declared collection the viewer may read, or null. */
const loadCollection = async (name: string) =>
  (await loadCollections()).find((collection) => collection.name === name) ?? null;

/** Every field of every index of the collection, each once, in declaration order. */
const indexFieldsOf = (indexes: readonly { fields: readonly string[] }[]) => [
  ...new Set(indexes.flatMap((index) => index.fields)),
];

/** The lines to add to portico.config.json, laid out as a person would write them. */
const CONFIG_EXAMPLE = `{
  "collections": {
    "notes": {
      "indexes": { "byStatus": ["status", "priority"] },
      "schema": {
        "type": "object",
        "properties": { "title": { "type": "string" }, "status": { "type": "string" } },
        "required": ["title"]
      }
    }
  }
}`;

/** What to do when nothing is declared yet: the configuration lines, and where the manual says more. */
function NoCollections() {
  return (
    <section class="card" aria-labelledby="no-collections">
      <h2 id="no-collections">No collections yet</h2>
      <p>
        A collection is declared in the configuration file (<code>portico.config.json</code> in the gateway's
        working directory, or the file <code>PORTICO_CONFIG</code> names) under <code>collections</code>, with
        the indexes its documents are found by and, if you like, a JSON Schema they must match:
      </p>
      <pre class="config-example">
        <code>{CONFIG_EXAMPLE}</code>
      </pre>
      <p>
        The gateway reads it at start. <a href="/docs/collections">Collections</a> in the manual
        (docs/collections.md) describes indexes, queries, access rules and schemas.
      </p>
    </section>
  );
}

/** The collections the configuration declares, with how many documents each holds. */
export function DataScreen() {
  const loaded = useLoad(async () => {
    const collections = await loadCollections();
    const counts = await Promise.all(
      collections.map(
        async ({ name }) => (await client.query(CountDocumentsDocument, { collection: name })).countDocuments,
      ),
    );
    return collections.map((collection, i) => ({ ...collection, count: counts[i]! }));
  }, []);
  const collections = loaded.data ?? [];
  return (
    <>
      <Heading title="Data">Data</Heading>
      <ProblemNote problem={loaded.problem} />
      {loaded.data?.length === 0 ? (
        <NoCollections />
      ) : (
        <DataTable
          caption="Collections"
          rows={collections}
          loaded={loaded}
          empty="No collections could be read."
          rowKey={(collection) => collection.name}
          columns={[
            {
              label: 'Collection',
              cell: (collection) => <Link to={`/data/${segment(collection.name)}`}>{collection.name}</Link>,
            },
            { label: 'Documents', kind: 'number', cell: (collection) => collection.count },
            {
              label: 'Indexes',
              cell: (collection) =>
                collection.indexes.length === 0 ? (
                  <span class="note">none</span>
                ) : (
                  collection.indexes
                    .map(
                      (index) =>
                        `${index.name} (${index.fields.join(', ')})${index.unique ? ', unique' : ''}`,
                    )
                    .join('; ')
                ),
            },
          ]}
        />
      )}
    </>
  );
}

/**
 * A value typed into a query field: JSON when it parses (42, true, null, "42"), the text
 * itself otherwise, so plain words need no quotes.
 */
function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

interface Filter {
  index: string;
  eq: string[];
  lowerOp: 'gt' | 'gte';
  lower: string;
  upperOp: 'lt' | 'lte';
  upper: string;
  order: SortOrder;
}

const emptyFilter = (index = ''): Filter => ({
  index,
  eq: [],
  lowerOp: 'gte',
  lower: '',
  upperOp: 'lte',
  upper: '',
  order: 'ASC',
});

/** The field a range applies to: the first one without an equal value, if any. */
function rangeFieldOf(fields: readonly string[], eq: readonly string[]): string | undefined {
  const prefix = fields.findIndex((_, i) => (eq[i] ?? '') === '');
  return prefix === -1 ? undefined : fields[prefix];
}

/**
 * The `where` of a filter on an index: equality on the leading fields filled in, then a range
 * on the next field, as the server takes them. A gap in the equality fields is refused here,
 * with the field that is missing.
 */
function whereOf(
  fields: readonly string[],
  filter: Filter,
): { where: IndexQuery | null } | { mistake: string } {
  const filled = fields.map((_, i) => (filter.eq[i] ?? '') !== '');
  const prefix = filled.indexOf(false) === -1 ? fields.length : filled.indexOf(false);
  const stray = filled.indexOf(true, prefix);
  if (stray !== -1)
    return { mistake: `Fill “${fields[prefix]}” too: equality applies to leading fields, in order.` };
  const where: IndexQuery = {};
  if (prefix > 0)
    where.eq = Object.fromEntries(
      fields.slice(0, prefix).map((field, i) => [field, parseValue(filter.eq[i]!)]),
    );
  // With every field equal there is no range: its inputs are hidden then, and dropped.
  if (prefix < fields.length) {
    if (filter.lower !== '') where[filter.lowerOp] = parseValue(filter.lower);
    if (filter.upper !== '') where[filter.upperOp] = parseValue(filter.upper);
  }
  return { where: Object.keys(where).length > 0 ? where : null };
}

const LOWER_OPS = { gte: 'at least (≥)', gt: 'more than (>)' } as const;
const UPPER_OPS = { lte: 'at most (≤)', lt: 'less than (<)' } as const;

/** One end of a range: how it compares (`ops`, in the order offered) and the value. */
function Bound<Op extends string>({
  side,
  ops,
  op,
  value,
  onOp,
  onValue,
}: {
  side: 'Lower' | 'Upper';
  ops: Record<Op, string>;
  op: Op;
  value: string;
  onOp: (op: Op) => void;
  onValue: (value: string) => void;
}) {
  return (
    <>
      <label>
        {side} bound
        <select value={op} onChange={(event) => onOp(event.currentTarget.value as Op)}>
          {(Object.entries(ops) as [Op, string][]).map(([name, label]) => (
            <option key={name} value={name}>
              {label}
            </option>
          ))}
        </select>
      </label>
      <label>
        {side} value
        <input value={value} onInput={(event) => onValue(event.currentTarget.value)} />
      </label>
    </>
  );
}

/** A document's field as a table cell: text as is, other JSON compact; both cut short. */
function FieldCell({ value }: { value: unknown }) {
  if (value === undefined) return <span class="note">–</span>;
  return (
    <span class="field-value">
      {typeof value === 'string' ? cellText(value) : <code>{cellText(value)}</code>}
    </span>
  );
}

/** A column header that sorts the applied query the other way round. */
function SortButton({ label, order, onSort }: { label: string; order: SortOrder; onSort: () => void }) {
  const next = order === 'ASC' ? 'descending' : 'ascending';
  return (
    <button type="button" class="sort" aria-label={`${label}: sort ${next}`} onClick={onSort}>
      {label} <span aria-hidden="true">{order === 'ASC' ? '▲' : '▼'}</span>
    </button>
  );
}

interface Applied {
  index: string | null;
  where: IndexQuery | null;
  order: SortOrder;
}

const ALL_BY_ID: Applied = { index: null, where: null, order: 'ASC' };

/** Browses one collection through one of its indexes. */
export function CollectionScreen({ name }: { name: string }) {
  const definition = useLoad(() => loadCollection(name), [name]);
  const [draft, setDraft] = useState<Filter>(emptyFilter());
  const [applied, setApplied] = useState<Applied>(ALL_BY_ID);
  const [mistake, setMistake] = useState('');
  useEffect(() => {
    setDraft(emptyFilter());
    setApplied(ALL_BY_ID);
    setMistake('');
  }, [name]);

  const documents = usePages(
    'documents',
    async (after) =>
      (await client.query(DocumentsDocument, { collection: name, ...applied, after })).documents,
    [name, applied],
  );
  const count = useLoad(
    async () =>
      (
        await client.query(CountDocumentsDocument, {
          collection: name,
          index: applied.index,
          where: applied.where,
        })
      ).countDocuments,
    [name, applied],
  );

  const indexes = definition.data?.indexes ?? [];
  const fields = indexes.find((index) => index.name === draft.index)?.fields ?? [];
  const rangeField = rangeFieldOf(fields, draft.eq);
  const set = (change: Partial<Filter>) => setDraft({ ...draft, ...change });
  // Sorting is what the applied index allows: its own order, either way round.
  const sortedFields = indexes.find((index) => index.name === applied.index)?.fields ?? [];
  const sortBy = () => {
    const order = applied.order === 'ASC' ? 'DESC' : 'ASC';
    setDraft({ ...draft, order });
    setApplied({ ...applied, order });
  };
  const sortable = (label: string, first: boolean): Pick<Column<unknown>, 'header' | 'sorted'> => ({
    header: <SortButton label={label} order={applied.order} onSort={sortBy} />,
    // One header carries the sort for assistive technology: the first key of the order.
    sorted: first ? (applied.order === 'ASC' ? 'ascending' : 'descending') : undefined,
  });

  // A refused query shows no rows: those on screen answered another query.
  const failed = mistake !== '' || !!documents.problem || !!count.problem;
  const rows = documents.items;
  const columns = fieldColumns(
    [...sortedFields, ...indexFieldsOf(indexes)],
    definition.data?.schema,
    rows.map((document) => document.data),
  );
  const dataColumns: Column<(typeof rows)[number]>[] = columns.fields.map((field) => ({
    label: field,
    key: `field:${field}`,
    ...(sortedFields.includes(field) ? sortable(field, field === sortedFields[0]) : {}),
    cell: (document) => <FieldCell value={valueAt(document.data, field)} />,
  }));

  return (
    <>
      <p>
        <Link to="/data">← All collections</Link>
      </p>
      <Heading title={name}>{name}</Heading>
      <ProblemNote problem={definition.problem} />
      {definition.data === null ? <p>No collection “{name}” is declared.</p> : null}
      <p>
        <Link to={`/data/${segment(name)}/new`} class="button">
          New document
        </Link>
      </p>
      <form
        class="card"
        aria-labelledby="query-heading"
        onSubmit={(event) => {
          event.preventDefault();
          const result = draft.index ? whereOf(fields, draft) : { where: null };
          if ('mistake' in result) {
            setMistake(result.mistake);
            return;
          }
          setMistake('');
          setApplied({ index: draft.index || null, where: result.where, order: draft.order });
        }}
      >
        <h2 id="query-heading">Query</h2>
        <div class="row">
          <label>
            Index
            <select
              value={draft.index}
              onChange={(event) => setDraft(emptyFilter(event.currentTarget.value))}
            >
              <option value="">None: all documents by id</option>
              {indexes.map((index) => (
                <option key={index.name} value={index.name}>
                  {index.name} ({index.fields.join(', ')})
                </option>
              ))}
            </select>
          </label>
          <label>
            Order
            <select
              value={draft.order}
              onChange={(event) => set({ order: event.currentTarget.value as SortOrder })}
            >
              <option value="ASC">Ascending</option>
              <option value="DESC">Descending</option>
            </select>
          </label>
        </div>
        {fields.length > 0 ? (
          <>
            <fieldset>
              <legend>Equal to (leading fields, in order)</legend>
              <div class="row">
                {fields.map((field, i) => (
                  <label key={field}>
                    {field}
                    <input
                      value={draft.eq[i] ?? ''}
                      onInput={(event) => {
                        const eq = [...draft.eq];
                        eq[i] = event.currentTarget.value;
                        // Bounds belong to their field: when the range moves to another (or none), they go.
                        set(rangeFieldOf(fields, eq) === rangeField ? { eq } : { eq, lower: '', upper: '' });
                      }}
                    />
                  </label>
                ))}
              </div>
            </fieldset>
            {rangeField ? (
              <fieldset>
                <legend>Range on {rangeField}</legend>
                <div class="row">
                  <Bound
                    side="Lower"
                    ops={LOWER_OPS}
                    op={draft.lowerOp}
                    value={draft.lower}
                    onOp={(lowerOp) => set({ lowerOp })}
                    onValue={(lower) => set({ lower })}
                  />
                  <Bound
                    side="Upper"
                    ops={UPPER_OPS}
                    op={draft.upperOp}
                    value={draft.upper}
                    onOp={(upperOp) => set({ upperOp })}
                    onValue={(upper) => set({ upper })}
                  />
                </div>
              </fieldset>
            ) : null}
            <p class="note">
              Values are JSON (<code>42</code>, <code>true</code>, <code>"42"</code>); other text is taken as
              a string.
            </p>
          </>
        ) : null}
        <button type="submit">Run query</button>
        <Mistake text={mistake} />
      </form>

      <ProblemNote problem={documents.problem ?? count.problem} />
      {failed ? null : (
        <>
          {count.data !== undefined ? (
            <p role="status">{count.data === 1 ? '1 document matches.' : `${count.data} documents match.`}</p>
          ) : null}
          {columns.hidden > 0 && rows.length > 0 ? (
            <p class="note">
              {columns.hidden} more field{columns.hidden === 1 ? ' is' : 's are'} in each document's JSON.
            </p>
          ) : null}
          <DataTable
            caption={`Documents of ${name}`}
            rows={rows}
            loaded={documents}
            empty={
              applied.index === null && applied.where === null
                ? 'No documents yet. “New document” above creates one, as a program’s putDocument does.'
                : 'No documents match.'
            }
            rowKey={(document) => document.id}
            columns={[
              {
                label: 'Id',
                ...(applied.index === null ? sortable('Id', true) : {}),
                // The raw JSON opens under the id: a column wide enough already, at the row's start.
                cell: (document) => (
                  <>
                    <Link to={`/data/${segment(name)}/${segment(document.id)}`}>{document.id}</Link>
                    <details class="raw-json">
                      <summary>
                        JSON<span class="visually-hidden"> of {document.id}</span>
                      </summary>
                      <pre>{JSON.stringify(document.data, null, 2)}</pre>
                    </details>
                  </>
                ),
              },
              ...dataColumns,
              { label: 'Version', kind: 'number', cell: (document) => document.version },
              { label: 'Updated', cell: (document) => <Time value={document.updatedAt} /> },
            ]}
          />
          {documents.pager}
        </>
      )}
    </>
  );
}

/**
 * Why a write was refused, in words. CONFLICT means one of two things: the document moved on
 * since it was opened (`currentVersion`), or a unique index holds the values already (`index`).
 */
function WriteProblem({
  problem,
  edited,
  onLoadCurrent,
}: {
  problem: Problem | null;
  edited: number | null;
  onLoadCurrent: () => void;
}) {
  if (problem?.code !== 'CONFLICT' || typeof problem.extensions.currentVersion !== 'number') {
    return <ProblemNote problem={problem} />;
  }
  const current = problem.extensions.currentVersion;
  return (
    <ProblemNote problem={problem}>
      <p>
        {current === 0
          ? 'The document was deleted since you opened it.'
          : `Someone saved this document since you opened version ${edited}: it is at version ${current} now.`}{' '}
        Nothing was written, and your text is still here. Load the current version to see what changed, then
        make your edit again.
      </p>
      {current === 0 ? null : (
        <button type="button" onClick={onLoadCurrent}>
          Load the current version (discards your text)
        </button>
      )}
    </ProblemNote>
  );
}

/** How long typing pauses before the text is checked, so a check never runs on every key. */
const CHECK_DELAY_MS = 300;

/**
 * What is wrong with the editor's text (null until first checked), checked a moment after
 * typing pauses: only a hint, since the server checks every write itself.
 */
function useTextCheck(text: string, schema: JsonObject | null): TextProblem[] | null {
  const validator = useMemo(() => (schema ? validatorOf(schema) : null), [schema]);
  const [problems, setProblems] = useState<TextProblem[] | null>(null);
  useEffect(() => {
    const timer = setTimeout(
      () =>
        setProblems(typeof validator === 'string' ? [{ message: validator }] : problemsOf(text, validator)),
      CHECK_DELAY_MS,
    );
    return () => clearTimeout(timer);
  }, [text, validator]);
  return problems;
}

/** The check's findings beside the editor, each at its JSON pointer; read out as they change. */
function TextCheck({ problems, schema }: { problems: TextProblem[] | null; schema: boolean }) {
  return (
    <div id="document-check" class="text-check" aria-live="polite">
      {problems === null ? null : problems.length === 0 ? (
        <p class="note">{schema ? 'Matches the collection’s JSON Schema.' : 'Valid JSON.'}</p>
      ) : (
        <ul>
          {problems.map((problem, i) => (
            <li key={i}>
              {problem.pointer === undefined ? null : (
                <>
                  <code>{problem.pointer || '(the document)'}</code>{' '}
                </>
              )}
              {problem.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** Views and edits one document as JSON; `id` null creates a new one. */
export function DocumentScreen({ collection, id }: { collection: string; id: string | null }) {
  const loaded = useLoad(
    async () => (id ? (await client.query(DocumentDocument, { collection, id })).document : null),
    [collection, id],
  );
  const definition = useLoad(() => loadCollection(collection), [collection]);
  const [text, setText] = useState('{\n  \n}');
  const [notice, setNotice] = useState('');
  const [mistake, setMistake] = useState('');
  const write = useAction();
  const document = loaded.data ?? null;
  useEffect(() => {
    if (document) setText(JSON.stringify(document.data, null, 2));
  }, [document]);
  // A new document starts from what the collection implies, unless the user has typed already.
  const typed = useRef(false);
  const schema = definition.data?.schema ?? null;
  useEffect(() => {
    if (!id && !typed.current && definition.data)
      setText(templateOf(schema, indexFieldsOf(definition.data.indexes)));
  }, [id, definition.data]);
  const problems = useTextCheck(text, schema);

  const title = id ? `Document ${id}` : `New document in ${collection}`;
  const back = `/data/${segment(collection)}`;
  if (id && !document) {
    return (
      <>
        <p>
          <Link to={back}>← {collection}</Link>
        </p>
        <Heading title={title}>{title}</Heading>
        <ProblemNote problem={loaded.problem} />
        {loaded.loading ? <p class="note">Loading…</p> : loaded.problem ? null : <p>No such document.</p>}
      </>
    );
  }

  const save = () => {
    setNotice('');
    setMistake('');
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (error) {
      setMistake(`This is not valid JSON: ${(error as Error).message}`);
      return;
    }
    if (!data || typeof data !== 'object' || Array.isArray(data)) {
      setMistake('A document is a JSON object: { … }.');
      return;
    }
    return write.run(async () => {
      const { putDocument: saved } = await client.mutate(PutDocumentDocument, {
        collection,
        id: document?.id ?? null,
        data: data as Record<string, unknown>,
        // Written only if nobody saved meanwhile; otherwise CONFLICT, explained below.
        expectedVersion: document?.version ?? null,
      });
      if (!id) navigate(`${back}/${segment(saved.id)}`, { replace: true });
      else {
        loaded.reload();
        setNotice(`Saved as version ${saved.version}.`);
      }
    });
  };

  return (
    <>
      <p>
        <Link to={back}>← {collection}</Link>
      </p>
      <Heading title={title}>{title}</Heading>
      {document ? (
        <dl class="facts">
          <dt>Version</dt>
          <dd>{document.version}</dd>
          <dt>Created</dt>
          <dd>
            <Time value={document.createdAt} />
          </dd>
          <dt>Updated</dt>
          <dd>
            <Time value={document.updatedAt} />
          </dd>
          <dt>Owner</dt>
          <dd>{document.owner?.email ?? <span class="note">none</span>}</dd>
        </dl>
      ) : null}
      <form
        class="card"
        onSubmit={(event) => {
          event.preventDefault();
          void save();
        }}
      >
        <label>
          Document JSON
          <textarea
            rows={16}
            spellcheck={false}
            value={text}
            aria-describedby="document-check"
            aria-invalid={problems !== null && problems.length > 0}
            onInput={(event) => {
              typed.current = true;
              setText(event.currentTarget.value);
            }}
          />
        </label>
        <TextCheck problems={problems} schema={schema !== null} />
        <div class="actions">
          <button type="submit" disabled={write.busy}>
            {id ? 'Save' : 'Create document'}
          </button>
          {document ? (
            <ConfirmButton
              label="Delete document"
              confirmLabel="Delete"
              question={`Delete version ${document.version} of this document?`}
              disabled={write.busy}
              onConfirm={() =>
                write.run(async () => {
                  await client.mutate(DeleteDocumentDocument, {
                    collection,
                    id: document.id,
                    expectedVersion: document.version,
                  });
                  navigate(back);
                })
              }
            />
          ) : null}
        </div>
        <Mistake text={mistake} />
        <WriteProblem
          problem={write.problem}
          edited={document?.version ?? null}
          onLoadCurrent={() => {
            write.setProblem(null);
            loaded.reload();
          }}
        />
        <p role="status">{notice}</p>
      </form>
    </>
  );
}
