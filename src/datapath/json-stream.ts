/**
 * Incremental splitter of a JSON array of objects arriving in chunks (bpftool
 * -j output): yields each complete top-level object's text, holding at most
 * one unfinished object. Strings are honoured so braces inside them are safe.
 */
export class JsonObjectStream {
  private buffer = ''
  private depth = 0
  private start = -1
  private inString = false
  private escaped = false

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
        continue
      }
      if (ch === '"') this.inString = true
      else if (ch === '{') {
        if (this.depth === 0) this.start = i
        this.depth++
      } else if (ch === '}') {
        this.depth--
        if (this.depth === 0 && this.start >= 0) {
          out.push(this.buffer.slice(this.start, i + 1))
          this.start = -1
        }
      }
    }
    if (this.depth === 0) {
      this.buffer = ''
    } else {
      this.buffer = this.buffer.slice(this.start)
      this.start = 0
    }
    return out
  }
}
