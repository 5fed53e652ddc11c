// The roofline benchmark's two probes (native/src/machine_limits.cc): they must measure work that
// really ran, and refuse arguments they cannot use.
import { describe, expect, it } from 'vitest';
import { native } from '../daemon/native.js';
import { nativeInt8Fast } from '../daemon/engine/native-weights.js';

const addon = native();

describe('machine limits', () => {
  it('times int8 dot products where the CPU has them, and reports none where it does not', () => {
    const r = addon.vnniPeak(1, 1e6) as { dotsPerNs: number; seconds: number };
    if (nativeInt8Fast) {
      expect(r.dotsPerNs).toBeGreaterThan(0);
      expect(r.seconds).toBeGreaterThan(0);
      // 1e6 dot products cannot take less than a dot product per cycle at 10 GHz.
      expect(r.dotsPerNs).toBeLessThan(100);
    } else {
      expect(r.dotsPerNs).toBe(0);
    }
  });

  it('reads a buffer at a finite rate, on one or two threads', () => {
    for (const threads of [1, 2]) {
      const r = addon.readBandwidth(8 * 2 ** 20, threads, 2) as { bytesPerNs: number };
      expect(r.bytesPerNs).toBeGreaterThan(0);
      expect(r.bytesPerNs).toBeLessThan(10_000);
    }
  });

  it('refuses missing or unusable arguments', () => {
    expect(() => addon.vnniPeak()).toThrow(/vnniPeak\(threads, count\)/);
    expect(() => addon.readBandwidth(8)).toThrow(/readBandwidth\(bytes, threads, passes\)/);
    expect(() => addon.readBandwidth(16, 1, 1)).toThrow(/at least 64 bytes/);
  });
});
