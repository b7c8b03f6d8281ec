/**
 * Just enough of Source Map v3 to map a generated position back to its source: used to name the
 * source file and line of functions in a CPU profile of the bundled daemon.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const DIGIT = new Map([...BASE64].map((c, i) => [c, i]));

/** Segments per generated line: [generatedColumn, sourceIndex, sourceLine, sourceColumn]. */
type Segment = [number, number, number, number];

export interface SourceMapLookup {
  /** 0-based line and column in the generated file → absolute source path and 1-based line. */
  original(line: number, column: number): { source: string; line: number } | undefined;
}

function decodeMappings(mappings: string): Segment[][] {
  const lines: Segment[][] = [];
  let source = 0;
  let sourceLine = 0;
  let sourceColumn = 0;
  for (const lineText of mappings.split(";")) {
    const segments: Segment[] = [];
    let column = 0;
    for (const text of lineText.split(",")) {
      if (!text) continue;
      const values: number[] = [];
      let value = 0;
      let shift = 0;
      for (const ch of text) {
        const digit = DIGIT.get(ch) ?? 0;
        value += (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else {
          values.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      column += values[0] ?? 0;
      if (values.length >= 4) {
        source += values[1] ?? 0;
        sourceLine += values[2] ?? 0;
        sourceColumn += values[3] ?? 0;
        segments.push([column, source, sourceLine, sourceColumn]);
      }
    }
    lines.push(segments);
  }
  return lines;
}

const cache = new Map<string, SourceMapLookup | undefined>();

/** The lookup for a generated file with a `<file>.map` beside it, if there is one. */
export function sourceMapFor(file: string): SourceMapLookup | undefined {
  if (cache.has(file)) return cache.get(file);
  let lookup: SourceMapLookup | undefined;
  const mapFile = `${file}.map`;
  if (existsSync(mapFile)) {
    const map = JSON.parse(readFileSync(mapFile, "utf8")) as {
      sources: string[];
      sourceRoot?: string;
      mappings: string;
    };
    const lines = decodeMappings(map.mappings);
    const base = resolve(dirname(mapFile), map.sourceRoot ?? "");
    lookup = {
      original(line, column) {
        const segments = lines[line];
        if (!segments?.length) return undefined;
        let best: Segment | undefined;
        for (const s of segments) {
          if (s[0] <= column) best = s;
          else break;
        }
        best ??= segments[0];
        if (!best) return undefined;
        const source = map.sources[best[1]];
        return source === undefined ? undefined : { source: resolve(base, source), line: best[2] + 1 };
      },
    };
  }
  cache.set(file, lookup);
  return lookup;
}
