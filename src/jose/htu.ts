/**
 * The "htu" comparison of RFC 9449 §4.3: the request URI without query and fragment, compared
 * after syntax- and scheme-based normalization (RFC 3986 §6.2.2, §6.2.3): lower-case scheme and
 * host, default port dropped, dot segments removed, percent-encoding normalized.
 */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

function normalizePercentEncoding(path: string): string {
  return path.replace(/%[0-9A-Fa-f]{2}/g, (encoded) => {
    const char = String.fromCharCode(Number.parseInt(encoded.slice(1), 16));
    return UNRESERVED.test(char) ? char : encoded.toUpperCase();
  });
}

/** scheme://host[:port]/path of an http(s) URL, or `undefined` when it is not one. */
export function normalizeHtu(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return undefined;
  if (url.username !== "" || url.password !== "") return undefined;
  return `${url.protocol}//${url.host}${normalizePercentEncoding(url.pathname)}`;
}
