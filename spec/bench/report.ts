// What each benchmark hands the runner: a table, notes, and rows for the final
// "target vs measured" summary. Informational only: nothing here fails a run.

export type Row = Record<string, string | number>;

export interface SummaryRow {
  target: string;
  measured: string;
  verdict: 'pass' | 'miss' | 'info' | 'n/a';
}

export interface BenchReport {
  title: string;
  tables: Array<{ caption: string; rows: Row[] }>;
  notes: string[];
  summary: SummaryRow[];
}

export const ms = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
export const num = (x: number, digits = 0) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : '-');
export const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
export const verdict = (ok: boolean | null): SummaryRow['verdict'] => (ok === null ? 'n/a' : ok ? 'pass' : 'miss');
