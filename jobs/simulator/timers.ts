// Every timer the simulator starts goes through one registry, so stop() can clear them all
// and no stray callback fires after the server is gone.

export interface TimerHandle {
  cancel(): void;
}

export class TimerRegistry {
  readonly #active = new Set<() => void>();
  #stopped = false;

  setTimeout(callback: () => void, ms: number): TimerHandle {
    if (this.#stopped) return { cancel() {} };
    const cancel = (): void => {
      clearTimeout(timer);
      this.#active.delete(cancel);
    };
    const timer = setTimeout(() => {
      this.#active.delete(cancel);
      callback();
    }, Math.max(0, ms));
    this.#active.add(cancel);
    return { cancel };
  }

  setInterval(callback: () => void, ms: number, options: { unref?: boolean } = {}): TimerHandle {
    if (this.#stopped) return { cancel() {} };
    const timer = setInterval(callback, Math.max(1, ms));
    if (options.unref === true) timer.unref();
    const cancel = (): void => {
      clearInterval(timer);
      this.#active.delete(cancel);
    };
    this.#active.add(cancel);
    return { cancel };
  }

  /** Resolves after ms, or early (without error) when the registry is cleared. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#stopped) {
        resolve();
        return;
      }
      const finish = (): void => {
        this.#active.delete(finish);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(finish, Math.max(0, ms));
      this.#active.add(finish);
    });
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Clears every pending timer and refuses new ones. */
  stopAll(): void {
    this.#stopped = true;
    for (const cancel of [...this.#active]) cancel();
    this.#active.clear();
  }
}
