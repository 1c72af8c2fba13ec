import { useEffect, useState } from 'preact/hooks';

/**
 * Whether the gateway answers, for the whole console. A request that reached no server, or the
 * subscriptions' WebSocket closing, makes it suspect the gateway is away; it then asks `/health`
 * (which needs no database) until an answer comes. Nothing polls while all is well.
 */
export type Reach = 'answering' | 'away' | 'back';

/** How often `/health` is asked while the gateway is away. */
const PROBE_MS = 2000;
/** How long "back" is said before the notice goes (its fade, in styles.css, takes as long). */
const BACK_MS = 6000;

let reach: Reach = 'answering';
/** How many times the gateway came back: screens read their data again on each. */
let returns = 0;
let probing = false;
let backTimer: ReturnType<typeof setTimeout> | undefined;
const listeners = new Set<() => void>();

function set(next: Reach) {
  reach = next;
  for (const listener of listeners) listener();
}

async function answers() {
  try {
    return (await fetch('/health', { cache: 'no-store' })).ok;
  } catch {
    return false;
  }
}

async function probe() {
  if (await answers()) {
    probing = false;
    if (reach !== 'away') return;
    returns++;
    set('back');
    backTimer = setTimeout(() => set('answering'), BACK_MS);
    return;
  }
  clearTimeout(backTimer);
  if (reach !== 'away') set('away');
  setTimeout(probe, PROBE_MS);
}

/** Something suggests the gateway is away (a failed request, a closed socket): find out. */
export function suspectAway() {
  if (probing) return;
  probing = true;
  void probe();
}

/** Re-renders on every change of the gateway's reach; `returns` counts its comebacks. */
export function useReach() {
  const [, setVersion] = useState(0);
  useEffect(() => {
    const update = () => setVersion((version) => version + 1);
    listeners.add(update);
    return () => {
      listeners.delete(update);
    };
  }, []);
  return { reach, returns };
}
