import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

/** Where the console lives; the gateway serves index.html for every path under it. */
export const BASE = '/admin';

const CHANGE = 'console:navigate';

/** The path below /admin (e.g. `/users/42`) and its query, as the address bar shows them. */
export function currentLocation() {
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : '';
  return {
    segments: path.split('/').filter(Boolean).map(decodeURIComponent),
    query: new URLSearchParams(location.search),
  };
}

/** Goes to a path below /admin without reloading the page. */
export function navigate(to: string, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', BASE + to);
  else history.pushState(null, '', BASE + to);
  dispatchEvent(new Event(CHANGE));
}

/** Re-renders on every navigation, ours or the browser's back and forward buttons. */
export function useLocation() {
  const [where, setWhere] = useState(currentLocation);
  useEffect(() => {
    const update = () => setWhere(currentLocation());
    addEventListener('popstate', update);
    addEventListener(CHANGE, update);
    return () => {
      removeEventListener('popstate', update);
      removeEventListener(CHANGE, update);
    };
  }, []);
  return where;
}

interface LinkProps {
  to: string;
  children: ComponentChildren;
  class?: string;
  'aria-current'?: 'page';
}

/** A real link (it opens in a new tab, and works without the router) that navigates in place on a plain click. */
export function Link({ to, children, ...rest }: LinkProps) {
  const onClick = (event: MouseEvent) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(to);
  };
  return (
    <a {...rest} href={BASE + to} onClick={onClick}>
      {children}
    </a>
  );
}

/** A path segment made safe for a URL (ids and collection names may hold any printable character). */
export const segment = (value: string) => encodeURIComponent(value);
