/**
 * Text that every database keeps exactly as given: no U+0000 (PostgreSQL refuses it in text, bound
 * or not) and no lone surrogate (it has no UTF-8 form; drivers would store U+FFFD instead).
 */
export const isStorableText = (text: string) => !text.includes('\u0000') && text.isWellFormed();
