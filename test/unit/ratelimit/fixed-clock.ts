import type { Clock } from "../../../src/services/clock.js";

/** A clock the test moves by hand, so refills and blocks pass without sleeping. */
export class FixedClock implements Clock {
  constructor(public ms = Date.UTC(2030, 0, 1)) {}
  now(): Date {
    return new Date(this.ms);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}
