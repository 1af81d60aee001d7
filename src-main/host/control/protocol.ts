/**
 * Control-socket wire format (`<data>/control.sock`): newline-delimited JSON, one frame per
 * line, UTF-8.
 *   client → server  {"id":1,"op":"volume.list","input":{}}
 *                    {"id":2,"op":"$subscribe","input":{"events":["holds.changed"]}}  (events optional: all)
 *                    {"id":3,"op":"$unsubscribe"}
 *   server → client  {"id":1,"ok":true,"result":…} | {"id":1,"ok":false,"error":{code,message}}
 *                    {"event":"holds.changed","payload":{…}}
 * A frame that is not JSON or has no usable id/op gets a reply with id null and INVALID_ARGUMENT;
 * a frame longer than the cap gets that reply and the connection is closed (the stream cannot
 * be trusted to resynchronise).
 */
import type { ErrorPayload } from '../../../src-shared/errors';

export const SUBSCRIBE = '$subscribe';
export const UNSUBSCRIBE = '$unsubscribe';
/** Requests are small; anything near this is hostile or a bug. */
export const MAX_REQUEST_FRAME = 1024 * 1024;
/** Replies carry lists (volumes with extents, snapshots); generous but bounded. */
export const MAX_REPLY_FRAME = 64 * 1024 * 1024;

export type FrameId = number | string | null;
export interface RequestFrame {
  id: FrameId;
  op: string;
  input?: unknown;
}
export type ReplyFrame = { id: FrameId; ok: true; result: unknown } | { id: FrameId; ok: false; error: ErrorPayload };
export interface EventFrame {
  event: string;
  payload: unknown;
}

/**
 * Splits a byte stream into lines without ever buffering more than `maxFrame` bytes of an
 * unfinished line. `onLine` gets each complete line (without the newline); `onOverflow` is
 * called once when a line exceeds the cap, after which the splitter ignores further input.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private dead = false;

  constructor(
    private readonly maxFrame: number,
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: () => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (!this.dead && start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      if (this.size + (end - start) > this.maxFrame) {
        this.dead = true;
        this.parts = [];
        this.onOverflow();
        return;
      }
      if (end > start) {
        this.parts.push(chunk.subarray(start, end));
        this.size += end - start;
      }
      if (nl === -1) return;
      const line = Buffer.concat(this.parts, this.size).toString('utf8');
      this.parts = [];
      this.size = 0;
      start = nl + 1;
      if (line.trim() !== '') this.onLine(line);
    }
  }
}
