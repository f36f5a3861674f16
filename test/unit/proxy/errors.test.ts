import t from 'tap';
import { ProxyError, ProxyErrorCode, rescue } from '../../../proxy/errors';

t.test('a connect failure maps to 503 UF with Envoy details', async (t) => {
  const r = rescue(new ProxyError(ProxyErrorCode.UPSTREAM_CONNECT, 'refused'));
  t.equal(r.status, 503);
  t.equal(r.flags, 'UF');
  t.equal(r.details, 'upstream_reset_before_response_started{connection_failure}');
});
