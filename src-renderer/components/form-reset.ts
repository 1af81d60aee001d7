/** Clearing a form after its request succeeded, without losing what was typed meanwhile. */
import type { Dispatch, SetStateAction } from 'react';

/**
 * Puts a field (or a whole form's state) back to `empty` once the request it was submitted with
 * has succeeded — unless the person has typed something else while the request ran (the next
 * volume's name, say), which stays. `submitted` is the state as it was sent.
 */
export function resetIfUnchanged<T>(set: Dispatch<SetStateAction<T>>, submitted: T, empty: T): void {
  set((now) => (now === submitted ? empty : now));
}
