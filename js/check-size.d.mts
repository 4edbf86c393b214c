export const BUDGET_BYTES: number;
export const BUNDLE: string;
export function checkSize(file?: string, budget?: number): boolean;
