/**
 * A modal dialog per the WAI-ARIA dialog pattern: role="dialog" + aria-modal, rendered over the
 * page (portal into <body>, the rest of the page `inert` meanwhile). Invariants while open:
 * keyboard focus stays inside — Tab from the last tabbable element goes to the first, Shift+Tab
 * from the first to the last, focus that lands outside is brought back; Escape closes unless
 * `canClose` is false (work in progress); on close focus returns to the element that opened it.
 */
import { useEffect, useRef, type ReactNode } from 'react';
import { createPortal } from 'react-dom';

const FOCUSABLE = 'a[href], area[href], button, input, select, textarea, iframe, summary, [tabindex], [contenteditable="true"]';

/** Elements Tab stops at, in order; a radio group is one stop (its checked radio, else its first). */
export function tabbables(root: HTMLElement): HTMLElement[] {
  const out: HTMLElement[] = [];
  const radioGroups = new Map<string, HTMLInputElement[]>();
  for (const el of root.querySelectorAll<HTMLElement>(FOCUSABLE)) {
    if ((el as HTMLButtonElement).disabled || el.tabIndex < 0 || el.closest('[hidden], [inert]')) continue;
    if (el instanceof HTMLInputElement && el.type === 'hidden') continue;
    if (el instanceof HTMLInputElement && el.type === 'radio' && el.name) {
      const group = radioGroups.get(el.name);
      if (group) {
        group.push(el);
        continue;
      }
      radioGroups.set(el.name, [el]);
    }
    out.push(el);
  }
  return out.map((el) => {
    if (!(el instanceof HTMLInputElement && el.type === 'radio' && el.name)) return el;
    const group = radioGroups.get(el.name)!;
    return group.find((r) => r.checked) ?? group[0]!;
  });
}

export function ModalDialog({
  labelledBy,
  onClose,
  canClose = true,
  className = 'dialog',
  children,
}: {
  labelledBy: string;
  onClose: () => void;
  canClose?: boolean;
  className?: string;
  children: ReactNode;
}) {
  const dialogRef = useRef<HTMLDivElement>(null);
  // Captured during the first render, before anything inside takes focus.
  const opener = useRef<Element | null>(typeof document !== 'undefined' ? document.activeElement : null);
  const close = useRef({ onClose, canClose });
  close.current = { onClose, canClose };

  useEffect(() => {
    const dialog = dialogRef.current!;
    const overlay = dialog.parentElement!;
    if (!dialog.contains(document.activeElement)) (tabbables(dialog)[0] ?? dialog).focus();
    // Everything else on the page is out of reach (and of the accessibility tree) while open.
    const made: Element[] = [];
    for (const el of document.body.children) {
      if (el !== overlay && !el.hasAttribute('inert')) {
        el.setAttribute('inert', '');
        made.push(el);
      }
    }
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        if (close.current.canClose) {
          e.preventDefault();
          close.current.onClose();
        }
        return;
      }
      if (e.key !== 'Tab') return;
      const stops = tabbables(dialog);
      if (stops.length === 0) {
        e.preventDefault();
        dialog.focus();
        return;
      }
      const first = stops[0]!;
      const last = stops[stops.length - 1]!;
      const at = document.activeElement;
      const inside = at instanceof HTMLElement && dialog.contains(at);
      if (e.shiftKey && (!inside || at === first || at === dialog || (!stops.includes(at as HTMLElement) && isBefore(at!, first)))) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && (!inside || at === last || (!stops.includes(at as HTMLElement) && isBefore(last, at!)))) {
        e.preventDefault();
        first.focus();
      }
    };
    const onFocusIn = (e: FocusEvent) => {
      if (e.target instanceof Node && !dialog.contains(e.target)) (tabbables(dialog)[0] ?? dialog).focus();
    };
    document.addEventListener('keydown', onKey, true);
    document.addEventListener('focusin', onFocusIn);
    return () => {
      document.removeEventListener('keydown', onKey, true);
      document.removeEventListener('focusin', onFocusIn);
      for (const el of made) el.removeAttribute('inert');
      const back = opener.current;
      if (back instanceof HTMLElement && back.isConnected) back.focus();
    };
  }, []);

  return createPortal(
    <div className="overlay">
      <div ref={dialogRef} className={className} role="dialog" aria-modal="true" aria-labelledby={labelledBy} tabIndex={-1}>
        {children}
      </div>
    </div>,
    document.body,
  );
}

/** Whether `a` comes before `b` in document order. */
function isBefore(a: Node, b: Node): boolean {
  return !!(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING);
}
