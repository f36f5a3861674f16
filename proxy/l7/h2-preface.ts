// The HTTP/2 connection preface a client with prior knowledge starts with (RFC 9113 §3.4). Its own
// file so the HTTP/1.1 server can recognise it without loading node:http2.

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
