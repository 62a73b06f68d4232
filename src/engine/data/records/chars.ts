/** Character codes the streaming scanners compare against. */
export const QUOTE = 34;
export const LF = 10;
export const CR = 13;
