/**
 * Whether `bytes` hold the end of an HTTP request head: an empty line, ended by CRLF or, as lenient
 * clients send it, by a bare LF. `from` is where the bytes not searched before start (the previous
 * length, when a head arrives in pieces). A false positive costs nothing (the HTTP parser then sees
 * an incomplete head and waits for the rest); only a missed end would hold a request back.
 */
export function holdsRequestHeadEnd(bytes: Buffer, from = 0): boolean {
  const start = Math.max(0, from - 2);
  return bytes.indexOf('\n\n', start) !== -1 || bytes.indexOf('\n\r\n', start) !== -1;
}
