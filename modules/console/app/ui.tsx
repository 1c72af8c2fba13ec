import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { isLeaving, type Problem, problemOf } from './api.ts';
import { useReach } from './connection.ts';

// ---------------------------------------------------------------- loading data

export interface Loaded<T> {
  data: T | undefined;
  problem: Problem | null;
  loading: boolean;
  reload: () => void;
}

/**
 * Runs `load` now, whenever `deps` change, and when the gateway is back after being away; an
 * answer that arrives after a newer request started is dropped, so a slow old page never
 * replaces a new one.
 */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): Loaded<T> {
  const { returns } = useReach();
  const [state, setState] = useState<{ data?: T; problem: Problem | null; loading: boolean }>({
    problem: null,
    loading: true,
  });
  const [generation, setGeneration] = useState(0);
  const latest = useRef(0);
  useEffect(() => {
    const request = ++latest.current;
    setState((previous) => ({ ...previous, loading: true }));
    load().then(
      (data) => request === latest.current && setState({ data, problem: null, loading: false }),
      (error: unknown) =>
        request === latest.current &&
        setState((previous) => ({ ...previous, problem: problemOf(error), loading: false })),
    );
  }, [...deps, generation, returns]);
  const reload = useCallback(() => setGeneration((value) => value + 1), []);
  return { data: state.data, problem: state.problem, loading: state.loading, reload };
}

interface Page<T> {
  edges: { node: T }[];
  pageInfo: { hasNextPage: boolean; endCursor?: string | null };
}

export interface Paged<T> extends Loaded<Page<T>> {
  items: T[];
  /** 1 for the first page. */
  page: number;
  pager: ComponentChildren;
}

/**
 * A relay connection read page by page. Connections only go forward, so the cursors of the
 * pages already seen are kept to step back; new `deps` (a search, a filter) start over.
 */
export function usePages<T>(
  label: string,
  load: (after: string | null) => Promise<Page<T>>,
  deps: readonly unknown[],
): Paged<T> {
  // The cursors belong to one set of inputs: other inputs (a search, a filter) start at page one.
  const key = JSON.stringify(deps);
  const [state, setState] = useState<{ key: string; cursors: (string | null)[] }>({ key, cursors: [null] });
  const cursors = state.key === key ? state.cursors : [null];
  const setCursors = (next: (string | null)[]) => setState({ key, cursors: next });
  const after = cursors.at(-1) ?? null;
  const loaded = useLoad(() => load(after), [...deps, after]);
  const pageInfo = loaded.data?.pageInfo;
  const pager =
    cursors.length > 1 || pageInfo?.hasNextPage ? (
      <nav class="pager" aria-label={`Pages of ${label}`}>
        <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
          Previous page
        </button>
        <span>Page {cursors.length}</span>
        <button
          type="button"
          disabled={!pageInfo?.hasNextPage || !pageInfo.endCursor}
          onClick={() => pageInfo?.endCursor && setCursors([...cursors, pageInfo.endCursor])}
        >
          Next page
        </button>
      </nav>
    ) : null;
  return { ...loaded, items: loaded.data?.edges.map((edge) => edge.node) ?? [], page: cursors.length, pager };
}

/**
 * Runs a user's action (a mutation) and keeps its problem for display. `busy` disables the
 * controls meanwhile, so a double click does not send it twice.
 */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const run = useCallback(async (action: () => Promise<unknown>) => {
    setBusy(true);
    setProblem(null);
    try {
      await action();
      return true;
    } catch (error) {
      setProblem(problemOf(error));
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  return { run, busy, problem, setProblem };
}

export type Action = ReturnType<typeof useAction>;

/**
 * Keeps a subscription open while the component is shown and hands each result to `onResult`.
 * A stream the server ends, or a dropped connection, is opened again a little later; a refusal
 * is returned for display (an ended session leaves for the login page instead).
 */
export function useSubscription<R>(
  open: () => AsyncIterableIterator<R>,
  onResult: (result: R) => void,
  deps: readonly unknown[],
): Problem | null {
  const [problem, setProblem] = useState<Problem | null>(null);
  const handler = useRef(onResult);
  handler.current = onResult;
  useEffect(() => {
    let stopped = false;
    let stream: AsyncIterableIterator<R> | undefined;
    let retry: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      stream = open();
      try {
        for await (const result of stream) {
          setProblem(null);
          handler.current(result);
        }
      } catch (error) {
        const refused = problemOf(error);
        if (refused.code !== 'NETWORK_ERROR') {
          setProblem(refused);
          return;
        }
      }
      if (!stopped && !isLeaving()) retry = setTimeout(run, 3000);
    };
    void run();
    return () => {
      stopped = true;
      clearTimeout(retry);
      void stream?.return?.();
    };
  }, deps);
  return problem;
}

// ---------------------------------------------------------------- pieces of screens

/** A problem as the server put it: the contract's code, then its message. */
export function ProblemNote({
  problem,
  children,
}: {
  problem: Problem | null;
  children?: ComponentChildren;
}) {
  if (!problem) return null;
  return (
    <div class="problem" role="alert">
      <p>
        <code class="code">{problem.code}</code> {problem.message}
      </p>
      {children}
    </div>
  );
}

/** A mistake found before anything was sent (a form filled in wrong), said where the form is. */
export function Mistake({ text }: { text: string }) {
  return text ? (
    <p class="problem" role="alert">
      {text}
    </p>
  ) : null;
}

/** The screen's title; it takes focus on arrival so keyboard and screen-reader users start there. */
export function Heading({ children, title }: { children: ComponentChildren; title: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Portico admin`;
    ref.current?.focus({ preventScroll: true });
  }, [title]);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {children}
    </h1>
  );
}

/** Shows that a list is loading or empty, so an empty table never looks like a broken one. */
export function ListState({
  loading,
  empty,
  children,
}: {
  loading: boolean;
  empty: boolean;
  children: string;
}) {
  if (loading)
    return (
      <p class="note" aria-live="polite">
        Loading…
      </p>
    );
  return empty ? <p class="note">{children}</p> : null;
}

/**
 * A one-field filter in a search landmark: the list follows what is submitted, not every
 * keystroke. `children` go after the submit button (e.g. a refresh).
 */
export function SearchForm({
  label,
  submitLabel,
  searchBox = false,
  onSearch,
  children,
}: {
  label: string;
  submitLabel: string;
  /** A search box (type="search", which browsers give a clear button); a plain text field otherwise. */
  searchBox?: boolean;
  onSearch: (text: string) => void;
  children?: ComponentChildren;
}) {
  const [draft, setDraft] = useState('');
  // Spread as one of two objects: Preact's types take `type` only as a literal of a kind of input.
  const kind = searchBox ? ({ type: 'search' } as const) : { type: undefined };
  return (
    <search>
      <form
        class="inline"
        onSubmit={(event) => {
          event.preventDefault();
          onSearch(draft);
        }}
      >
        <label>
          {label}
          <input {...kind} value={draft} onInput={(event) => setDraft(event.currentTarget.value)} />
        </label>
        <button type="submit">{submitLabel}</button>
        {children}
      </form>
    </search>
  );
}

const minutes = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const seconds = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A date in the reader's locale; `seconds` where they matter (lease expiry, audit order). */
export function Time({ value, seconds: precise }: { value: string | null | undefined; seconds?: boolean }) {
  if (!value) return <span class="note">never</span>;
  return <time dateTime={value}>{(precise ? seconds : minutes).format(new Date(value))}</time>;
}

export function formatBytes(size: number) {
  if (size < 1024) return `${size} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = size / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/**
 * A destructive action behind a second, explicit click: the first shows what will happen and
 * a confirm button (focused), with a way back. `name`, when given, is the first button's
 * accessible name: a row's buttons all read the same (`label`), and need to say which row.
 */
export function ConfirmButton({
  label,
  name,
  confirmLabel,
  question,
  onConfirm,
  disabled,
}: {
  label: string;
  name?: string;
  confirmLabel: string;
  question: string;
  onConfirm: () => void;
  disabled?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const confirm = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) confirm.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button
        type="button"
        class="danger"
        aria-label={name}
        disabled={disabled}
        onClick={() => setAsking(true)}
      >
        {label}
      </button>
    );
  }
  return (
    <fieldset class="confirm">
      <legend>{question}</legend>
      <button
        type="button"
        class="danger"
        ref={confirm}
        disabled={disabled}
        onClick={() => {
          setAsking(false);
          onConfirm();
        }}
      >
        {confirmLabel}
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </fieldset>
  );
}

/**
 * A row's Revoke button, which asks first: `label` says what it revokes (the button's name,
 * and the question with a "?"), and `revoke` runs as `action` (disabled while that is busy).
 */
export function RevokeButton({
  action,
  label,
  revoke,
}: {
  action: Action;
  label: string;
  revoke: () => Promise<unknown>;
}) {
  return (
    <ConfirmButton
      label="Revoke"
      name={label}
      confirmLabel="Revoke"
      question={`${label}?`}
      disabled={action.busy}
      onConfirm={() => void action.run(revoke)}
    />
  );
}

/**
 * A secret or link shown once, selectable, with a copy button. The clipboard API needs a
 * secure context (https or localhost); elsewhere the text is selected for a manual copy.
 */
export function Reveal({
  label,
  copyLabel,
  value,
  note,
}: {
  label: string;
  copyLabel: string;
  value: string;
  note: string;
}) {
  const [status, setStatus] = useState('');
  const input = useRef<HTMLInputElement>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setStatus('Copied.');
    } catch {
      input.current?.select();
      setStatus('Selected: press Ctrl+C (⌘C) to copy.');
    }
  };
  return (
    <div class="reveal">
      <label>
        {label}
        <input ref={input} readOnly value={value} onFocus={(event) => event.currentTarget.select()} />
      </label>
      <p class="note">{note}</p>
      <button type="button" onClick={copy}>
        {copyLabel}
      </button>{' '}
      <span role="status">{status}</span>
    </div>
  );
}

export interface Column<T> {
  /** The column's name: its header, and each cell's label on a phone. */
  label: string;
  /** Tells apart columns of one label (a document field named "Version"); `label` by default. */
  key?: string;
  /** A header richer than `label` (a sort button); `label` still names the cells. */
  header?: ComponentChildren;
  /** How the rows are sorted by this column, for assistive technology (`aria-sort`). */
  sorted?: 'ascending' | 'descending';
  cell: (row: T) => ComponentChildren;
  /** `number` aligns right; `wide` lets long text (user agents, JSON) wrap anywhere. */
  kind?: 'number' | 'wide';
}

/**
 * A table with a caption for screen readers. On a phone each row becomes a card whose
 * cells carry their column's name (`data-label`), so nothing needs sideways scrolling.
 * With `empty`, a ListState above it says when `loaded` has no answer yet, or that there are
 * no rows (in those words).
 */
export function DataTable<T>({
  caption,
  columns,
  rows,
  rowKey,
  loaded,
  empty,
}: {
  caption: string;
  columns: Column<T>[];
  rows: T[];
  rowKey: (row: T) => string;
  loaded?: Pick<Loaded<unknown>, 'data' | 'loading'>;
  empty?: string;
}) {
  const state =
    empty === undefined ? null : (
      <ListState loading={!!loaded?.loading && !loaded.data} empty={rows.length === 0}>
        {empty}
      </ListState>
    );
  if (rows.length === 0) return state;
  return (
    <>
      {state}
      <div class="table-wrap">
        <table>
          <caption class="visually-hidden">{caption}</caption>
          <thead>
            <tr>
              {columns.map((column) => (
                <th
                  scope="col"
                  key={column.key ?? column.label}
                  class={column.kind}
                  aria-sort={column.sorted}
                >
                  {column.header ?? column.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={rowKey(row)}>
                {columns.map((column) => (
                  <td key={column.key ?? column.label} class={column.kind} data-label={column.label}>
                    {/* One box: on a phone the cell is a grid of its label and this. */}
                    <div>{column.cell(row)}</div>
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
