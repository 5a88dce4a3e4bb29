/**
 * Current values of the features a controller implements (Set / Get Features), as named fields.
 * Defaults are the values after a Controller Level Reset. Raw dwords are kept in the spec's encoding
 * (see `src/nvme/features.ts`) so Get Features returns exactly what Set Features stored.
 */
export interface FeatureValues {
  /** 01h Arbitration: AB (bits 2:0), LPW, MPW, HPW. */
  arbitration: number;
  /** 02h Power Management: PS (bits 4:0), WH (bits 7:5). */
  powerManagement: number;
  /** 04h Temperature Threshold, keyed by `THSEL << 4 | TMPSEL` → TMPTH (kelvin). */
  temperatureThresholds: Record<string, number>;
  /** 05h Error Recovery: TLER (bits 15:0, 100 ms units), DULBE (bit 16). */
  errorRecovery: number;
  /** 06h Volatile Write Cache: WCE (bit 0). */
  volatileWriteCache: number;
  /** 07h Number of Queues as allocated: NSQA (15:0) | NCQA (31:16), 0's based; -1 until set. */
  numberOfQueues: number;
  /** 08h Interrupt Coalescing: THR (7:0, 0's based), TIME (15:8, 100 µs units). */
  interruptCoalescing: number;
  /** 09h Interrupt Vector Configuration: CD (bit 16) per vector, keyed by vector. */
  interruptVectorConfig: Record<string, number>;
  /** 0Ah Write Atomicity Normal: DN (bit 0). */
  writeAtomicity: number;
  /** 0Bh Asynchronous Event Configuration (bit mask of enabled notices). */
  asyncEventConfig: number;
}

/** Default temperature thresholds: over-temperature 0x157 K (70 °C) on the composite sensor. */
export const DEFAULT_OVER_TEMPERATURE_K = 0x157;

export function defaultFeatures(volatileWriteCache: boolean): FeatureValues {
  return {
    // AB = 111b: no arbitration burst limit.
    arbitration: 0x7,
    powerManagement: 0,
    temperatureThresholds: { "0": DEFAULT_OVER_TEMPERATURE_K, "16": 0 },
    errorRecovery: 0,
    volatileWriteCache: volatileWriteCache ? 1 : 0,
    numberOfQueues: -1,
    interruptCoalescing: 0,
    interruptVectorConfig: {},
    writeAtomicity: 0,
    asyncEventConfig: 0x100,
  };
}
