/**
 * Option-argument parsers for commander: each returns the parsed value or throws commander's
 * InvalidArgumentError, which the program turns into a usage error (exit 2) naming the option.
 */
import { InvalidArgumentError } from "@commander-js/extra-typings";

/** A parser for a decimal integer in [min, max] (underscores allowed as digit separators: 1_000_000). */
export function integer(min: number, max: number): (value: string) => number {
  return (value: string): number => {
    const text = value.replaceAll("_", "");
    if (!/^-?[0-9]+$/.test(text)) throw new InvalidArgumentError(`expected an integer in ${min}..${max}`);
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected an integer in ${min}..${max}`);
    return n;
  };
}

/** Parses "a,b,c" into ["a", "b", "c"] (spaces trimmed, empty items dropped). */
export function commaList(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}
