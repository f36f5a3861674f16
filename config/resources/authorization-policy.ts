// AuthorizationPolicy (security.istio.io/v1, v1beta1): field table for the subset sluice acts on at
// an egress point (Istio security/v1beta1 authorization.proto): `selector.matchLabels`, `action`
// ALLOW | DENY | AUDIT, and rules of `from.source.{principals, namespaces, ipBlocks}`,
// `to.operation.{hosts, ports, methods, paths}` and `when` on `connection.sni`. The other fields
// Istio defines are read (so a policy using them is not a parse error) and warned about as not
// acted on (config/resources/not-acted-on.ts); `action: CUSTOM` (external authorization) too.

import { ConfigErrorCode } from '../errors';
import { arr, enumOf, field, obj, required, schema, str, strList, strMap, type Locator, type Reporter } from './schema';
import type { AuthorizationPolicySpec, AuthzCondition } from './types';

const SOURCE = schema('Source', [
  field('principals', strList()),
  field('notPrincipals', strList()),
  field('requestPrincipals', strList()),
  field('notRequestPrincipals', strList()),
  field('namespaces', strList()),
  field('notNamespaces', strList()),
  field('ipBlocks', strList()),
  field('notIpBlocks', strList()),
  field('remoteIpBlocks', strList()),
  field('notRemoteIpBlocks', strList()),
]);

const OPERATION = schema('Operation', [
  field('hosts', strList()),
  field('notHosts', strList()),
  field('ports', strList()),
  field('notPorts', strList()),
  field('methods', strList()),
  field('notMethods', strList()),
  field('paths', strList()),
  field('notPaths', strList()),
]);

const CONDITION = schema('Condition', [
  required('key', str()),
  field('values', strList()),
  field('notValues', strList()),
], checkCondition);

const RULE = schema('Rule', [
  field('from', arr(obj(schema('From', [field('source', obj(SOURCE))])))),
  field('to', arr(obj(schema('To', [field('operation', obj(OPERATION))])))),
  field('when', arr(obj(CONDITION))),
]);

export const AUTHORIZATION_POLICY_SPEC = schema('AuthorizationPolicy', [
  field('selector', obj(schema('WorkloadSelector', [field('matchLabels', strMap())]))),
  field('targetRef', obj(schema('PolicyTargetReference', [field('group', str()), field('kind', str()), field('name', str()), field('namespace', str())]))),
  field('targetRefs', arr(obj(schema('PolicyTargetReference', [field('group', str()), field('kind', str()), field('name', str()), field('namespace', str())])))),
  field('rules', arr(obj(RULE))),
  field('action', enumOf('ALLOW', 'DENY', 'AUDIT', 'CUSTOM')),
  field('provider', obj(schema('ExtensionProvider', [field('name', str())]))),
], checkPolicy);

function checkCondition(c: AuthzCondition, loc: Locator, rep: Reporter): void {
  // Only the SNI is known for every request and connection at an egress point; other keys (JWT
  // claims, headers, ...) make an ALLOW rule never match and are left out of a DENY rule.
  if (c.key !== 'connection.sni') {
    rep.warn(ConfigErrorCode.NOT_ACTED_ON, loc.at(c, 'key'), `when key "${c.key}" is carried but not acted on: only connection.sni is evaluated; an ALLOW rule with it never matches, a DENY rule is applied without it`);
  }
  if (c.key === 'connection.sni' && (c.values === undefined || c.values.length === 0) && (c.notValues === undefined || c.notValues.length === 0)) {
    rep.error(ConfigErrorCode.INVALID_FIELD, loc.at(c, 'values'), 'at least one of values or notValues must be set');
  }
}

function checkPolicy(spec: AuthorizationPolicySpec, loc: Locator, rep: Reporter): void {
  // Istio: "a policy with action DENY or AUDIT must have rules" is not required, but a CUSTOM
  // policy needs a provider (validateAuthorizationPolicy).
  if (spec.action === 'CUSTOM' && spec.provider === undefined) rep.error(ConfigErrorCode.INVALID_FIELD, loc.at(spec, 'action'), 'CUSTOM action requires a provider');
}
