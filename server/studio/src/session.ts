// The credentials the page holds, kept in this browser's localStorage: the tenant's API key,
// and the operator's admin token for the operator view. `npm start` prints a link whose
// fragment (#key=…, never sent to a server) signs in with its development key.
const KEY = 'kiln.studio.apiKey';
const ADMIN = 'kiln.studio.adminToken';

function read(name: string): string | undefined {
  try {
    return localStorage.getItem(name) ?? undefined;
  } catch {
    return undefined; // storage off (private mode): the session lasts as long as the page
  }
}

function write(name: string, value: string | undefined): void {
  try {
    if (value === undefined) localStorage.removeItem(name);
    else localStorage.setItem(name, value);
  } catch {
    // nothing kept; the page still works until it is closed
  }
}

/** A key handed over in the URL's fragment is taken, kept, and removed from the address bar. */
export function takeKeyFromFragment(): string | undefined {
  const match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
  if (!match?.[1]) return undefined;
  const key = decodeURIComponent(match[1]);
  history.replaceState(null, '', location.pathname + location.search);
  write(KEY, key);
  return key;
}

export const storedKey = (): string | undefined => read(KEY);
export const keepKey = (key: string | undefined): void => write(KEY, key);
export const storedAdminToken = (): string | undefined => read(ADMIN);
export const keepAdminToken = (token: string | undefined): void => write(ADMIN, token);
