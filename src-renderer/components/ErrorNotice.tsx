/** A failure shown where it happened: the engine's message for a person, and its code. */
import { toHoldfastError } from '../api/transport';

export function ErrorNotice({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const e = toHoldfastError(error);
  return (
    <div className="notice notice-error" role="alert">
      <span className="notice-icon" aria-hidden="true">!</span>
      <div>
        {title && <strong className="notice-title">{title}</strong>}
        <p className="notice-message">{e.message}</p>
        <p className="notice-code">Error code: {e.code}</p>
      </div>
    </div>
  );
}

export function FieldError({ id, message }: { id: string; message: string | null }) {
  if (!message) return null;
  return (
    <p className="field-error" id={id} role="alert">
      {message}
    </p>
  );
}
