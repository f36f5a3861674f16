// Envoy's RBAC HTTP filter, as Istio configures it from AuthorizationPolicy: before routing, the
// request is checked against the policies that apply to this proxy (config/compile/authorization.ts,
// Istio's order CUSTOM, DENY, ALLOW). Denied: 403 `RBAC: access denied`, flag RBAC, details
// `rbac_access_denied_matched_policy[ns[NS]-policy[NAME]-rule[I]]` (`[none]` when no ALLOW policy
// matched); a CUSTOM match: 403, flag UAEX. Counted in `http.<prefix>.rbac.allowed|denied` when any
// policy applies (under --outbound-policy-mode report a denial is let through: rbac.shadow_denied,
// audit `would_deny`); the audit line gets `"decision":"deny"` with the policy as the reason, or for an
// AUDIT match the policy as the reason of an allowed request.

import { evaluateAuthz, type AuthzRequest } from '../../config/compile/authorization';
export { principalOf } from '../../config/compile/authorization';
import type { CompiledPolicy } from '../../config/compile/snapshot';
import { ProxyErrorCode, rescueFor } from '../errors';
import type { AccessLogRecord } from '../observe/access-log-record';
import type { HttpStats } from '../observe/stats';
import type { DownstreamStream } from './stream';
import { sendLocalReply } from './local-reply';

/** True when the request may go on; otherwise the 403 has been sent and the record filled. */
export function allowedByRbac(policies: readonly CompiledPolicy[] | undefined, r: AuthzRequest, stats: HttpStats, stream: DownstreamStream, record: AccessLogRecord, mode: 'enforce' | 'report' = 'enforce'): boolean {
  if (policies === undefined || policies.length === 0) return true;
  const v = evaluateAuthz(policies, r);
  if (v === null) return true;
  if (v.allowed) {
    stats.rbac_allowed.inc();
    if (v.audit !== null) record.policyReason = 'audit:' + v.audit;
    return true;
  }
  if (mode === 'report') {
    // Report mode: let it through, as Envoy's shadow rules do, and say what enforce would have done.
    stats.rbac_shadow_denied.inc();
    record.policyDecision = 'would_deny';
    record.policyReason = (v.custom ? 'ext_authz:' : 'rbac:') + v.policy;
    return true;
  }
  stats.rbac_denied.inc();
  const rescue = rescueFor(v.custom ? ProxyErrorCode.EXT_AUTHZ_DENIED : ProxyErrorCode.RBAC_DENIED);
  const details = v.custom ? rescue.details : `rbac_access_denied_matched_policy[${v.policy}]`;
  record.policyDecision = 'deny';
  record.policyReason = v.custom ? 'ext_authz:' + v.policy : 'rbac:' + v.policy;
  stream.closeAfter();
  sendLocalReply(stream, record, rescue.status, rescue.body, rescue.flags, details);
  return false;
}
