/**
 * At most `limit` holders at a time. Waiters are served urgent ones first, then in the order
 * they asked; a waiter can become urgent while it waits (someone started waiting on it) or give
 * up its place.
 */
export class Slots {
  private held = 0;
  private readonly waiting: Waiter[] = [];

  constructor(private readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`slots: limit must be a positive integer, not ${limit}`);
  }

  /** Resolves with the function that gives the slot back (call it exactly once). */
  acquire(urgent: boolean): SlotRequest {
    let waiter!: Waiter;
    const granted = new Promise<() => void>((resolve, reject) => {
      waiter = { urgent, resolve, reject };
    });
    if (this.held < this.limit) {
      this.grant(waiter);
    } else {
      this.waiting.push(waiter);
    }
    return {
      granted,
      hurry: () => {
        waiter.urgent = true;
      },
      cancel: (reason: Error) => {
        const at = this.waiting.indexOf(waiter);
        if (at < 0) return false;
        this.waiting.splice(at, 1);
        waiter.reject(reason);
        return true;
      },
    };
  }

  /** Holders now and waiters behind them (for diagnostics). */
  get usage(): { held: number; waiting: number } {
    return { held: this.held, waiting: this.waiting.length };
  }

  private grant(waiter: Waiter): void {
    this.held++;
    let released = false;
    waiter.resolve(() => {
      if (released) return;
      released = true;
      this.held--;
      const next = this.waiting.findIndex((w) => w.urgent);
      const [following] = this.waiting.splice(Math.max(next, 0), 1);
      if (following) this.grant(following);
    });
  }
}

export interface SlotRequest {
  granted: Promise<() => void>;
  /** Moves the request ahead of every waiter that is not urgent. */
  hurry(): void;
  /** Leaves the queue (`granted` rejects with `reason`); false once the slot was granted. */
  cancel(reason: Error): boolean;
}

interface Waiter {
  urgent: boolean;
  resolve(release: () => void): void;
  reject(reason: Error): void;
}
