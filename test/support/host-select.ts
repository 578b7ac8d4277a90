// A policy's plan without deviceRule: the fusor then selects on the host through select(), the
// reference the device-side selection must equal.
import type { SelectionPolicy } from '../../src/cacheblend/index.js';

export function hostSelecting(p: SelectionPolicy): SelectionPolicy {
  return {
    name: p.name,
    needsReference: p.needsReference,
    plan(c) {
      const { deviceRule: _unused, ...plan } = p.plan(c);
      return plan;
    },
  };
}
