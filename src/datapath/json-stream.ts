/**
 * Incremental splitter of a JSON array of objects arriving in chunks (bpftool
 * -j output): yields each complete element's text, holding at most one
 * unfinished element. Strings are honoured so brackets inside them are safe.
 *
 * bpftool's event_pipe writes an element's closing brace only when the next
 * one starts; with `completeAtLastField` an element counts as complete as soon
 * as a compound field closes (its last field: "data" or "lost"), so no event
 * waits for the next one.
 */
export class JsonObjectStream {
  private buffer = ''
  private depth = 0
  private start = -1
  private inString = false
  private escaped = false
  private emitted = false
  private startDepth = 1

  constructor(private readonly completeAtLastField = false) {}

  push(chunk: string): string[] {
    const out: string[] = []
    const base = this.buffer.length
    this.buffer += chunk
    for (let i = base; i < this.buffer.length; i++) {
      const ch = this.buffer[i]
      if (this.inString) {
        if (this.escaped) this.escaped = false
        else if (ch === '\\') this.escaped = true
        else if (ch === '"') this.inString = false
      } else if (ch === '"') {
        this.inString = true
      } else if (ch === '{' || ch === '[') {
        // Elements of the top array, or a bare top-level object (bpftool's {"error": …}).
        if (ch === '{' && this.depth <= 1 && this.start < 0) {
          this.start = i
          this.startDepth = this.depth
          this.emitted = false
        }
        this.depth++
      } else if (ch === '}' || ch === ']') {
        this.depth--
        if (this.start < 0) continue
        if (this.depth === this.startDepth + 1 && this.completeAtLastField && !this.emitted) {
          out.push(this.buffer.slice(this.start, i + 1) + '}')
          this.emitted = true
        } else if (this.depth === this.startDepth) {
          if (!this.emitted) out.push(this.buffer.slice(this.start, i + 1))
          this.start = -1
        }
      }
    }
    if (this.start < 0) {
      this.buffer = ''
    } else {
      this.buffer = this.buffer.slice(this.start)
      this.start = 0
    }
    return out
  }
}
