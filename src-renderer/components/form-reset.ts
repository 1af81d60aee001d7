/** Clearing a form after its request succeeded, without losing what was typed meanwhile. */
import type { Dispatch, SetStateAction } from 'react';

/**
 * Empties a field once the request it was submitted with has succeeded — unless the person has
 * typed something else while the request ran (the next volume's name, say), which stays.
 */
export function clearIfUnchanged(set: Dispatch<SetStateAction<string>>, submitted: string): void {
  set((now) => (now === submitted ? '' : now));
}
