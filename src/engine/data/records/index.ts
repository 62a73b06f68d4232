/**
 * Tables in the formats users bring: JSON Lines, CSV (RFC 4180: quoted fields, "" escapes,
 * line breaks inside quotes), TSV (tab-separated, no quoting) and JSON arrays. Every record comes
 * out as string values by column name; a bad row is reported with its row number and the rest
 * go on. Files of any encoding text.ts reads, streamed in linear time, JSON arrays too (element by
 * element). No line, field, record or array element longer than `maxRecord` characters (default
 * DEFAULT_MAX_RECORD) is held: past it the file is refused naming the line, and JSON nested
 * deeper than MAX_JSON_DEPTH levels is refused naming the file and line.
 */
export { formatOf, type DataFormat, type TableFormat } from './formats';
export { isProblem, type RowProblem, type TableReadOptions, type TableRow } from './rows';
export { MAX_JSON_DEPTH, nestedDeeperThan } from './json';
export { readRows, readTable, type Table } from './table';
