/** The stack of in-app notices in the corner: announced politely to screen readers, each dismissable. */
import { dismissNotice, useNotices } from '../live/notices';

export function Toasts() {
  const notices = useNotices();
  return (
    <div className="toasts" role="status" aria-live="polite" aria-label="Notifications">
      {notices.map((n) => (
        <div key={n.key} className={`toast toast-${n.tone}`}>
          <div className="toast-text">
            <strong>{n.title}</strong>
            {n.body && <p>{n.body}</p>}
          </div>
          <button type="button" className="btn btn-small btn-quiet" aria-label={`Dismiss: ${n.title}`} onClick={() => dismissNotice(n.key)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
