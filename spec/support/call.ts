// Test helper: one fetch against a foreman with the test token (unless the caller sends its
// own Authorization) and a `json` shorthand that POSTs a JSON body.

export type CallInit = RequestInit & { json?: unknown };

export function callForeman(baseUrl: string, token: string, path: string, init: CallInit = {}): Promise<Response> {
  const { json, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (!headers.has('authorization')) headers.set('authorization', `Bearer ${token}`);
  return fetch(baseUrl + path, {
    ...rest,
    method: rest.method ?? (json !== undefined ? 'POST' : 'GET'),
    headers,
    body: json !== undefined ? JSON.stringify(json) : rest.body,
  });
}
