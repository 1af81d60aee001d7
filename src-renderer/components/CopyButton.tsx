/** Copies a text to the clipboard and says so for two seconds. `compact`: an icon until clicked (for tight table cells). */
import { useEffect, useState } from 'react';
import { Icon } from './Icon';

export function CopyButton({ text, label, compact = false }: { text: string; label: string; compact?: boolean }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  useEffect(() => {
    if (state === 'idle') return;
    const t = setTimeout(() => setState('idle'), 2000);
    return () => clearTimeout(t);
  }, [state]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setState('copied');
    } catch {
      setState('failed');
    }
  };
  return (
    <button type="button" className={compact ? 'btn btn-small btn-icon' : 'btn btn-small'} onClick={copy} aria-label={label} title={compact ? label : undefined}>
      {state === 'copied' ? 'Copied' : state === 'failed' ? 'Copy failed — select the text' : compact ? <Icon name="copy" size={14} /> : 'Copy'}
    </button>
  );
}
