/**
 * When an X.509-SVID is renewed: SPIRE's rule (pkg/agent/common/rotationutil, shouldRotateByHalf),
 * drawn once per certificate instead of at every check.
 *
 *   lifetime = notAfter - notBefore, half = lifetime / 2, delta = half / 10
 *   SPIRE rotates once the time left (notAfter - now) <= jittered, jittered uniform in
 *   [half - delta, half + delta)
 *   so rotateAt = notAfter - jittered, which lies in (notBefore + half - delta, notBefore + half + delta]:
 *   half life, plus or minus 10 % of the half.
 *
 * `random()` in [0, 1) is injected (Math.random by default). An expired certificate is due at once.
 */
export function rotationTime(notBeforeMs: number, notAfterMs: number, random: () => number = Math.random): number {
  const lifetime = Math.max(0, notAfterMs - notBeforeMs);
  const half = lifetime / 2;
  const delta = half / 10;
  const jittered = half - delta + random() * 2 * delta;
  return Math.floor(notAfterMs - jittered);
}
