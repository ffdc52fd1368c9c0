// A monitor's output cut into lines as its chunks come. nft's monitor writes each element of a
// verdict map in a write of its own (measured, nft 1.0.6: one network added to 1,000 printed 80 KB
// in 1,100-2,100 chunks of 11-17 bytes, median), so the part of a line already received is kept as
// pieces and joined once, when its end comes: appending to one string and splitting it again at
// every chunk copied the line so far each time (a 27 KB rule line, a megabyte or more per line).

const NO_LINES: readonly string[] = [];

export class LineSplitter {
  /** The current line's chunks so far (no newline among them). */
  #pieces: string[] = [];

  /** The lines `chunk` completes, in order, without their newline; the rest is kept for later. */
  push(chunk: string): readonly string[] {
    let end = chunk.indexOf("\n");
    if (end < 0) {
      if (chunk !== "") this.#pieces.push(chunk);
      return NO_LINES;
    }
    const lines: string[] = [];
    this.#pieces.push(chunk.slice(0, end));
    lines.push(this.#pieces.length === 1 ? (this.#pieces[0] as string) : this.#pieces.join(""));
    this.#pieces = [];
    for (;;) {
      const start = end + 1;
      end = chunk.indexOf("\n", start);
      if (end < 0) {
        if (start < chunk.length) this.#pieces.push(chunk.slice(start));
        return lines;
      }
      lines.push(chunk.slice(start, end));
    }
  }
}
