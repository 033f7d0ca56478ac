/** A request to POST /chat, or a pause until engram has reflected on what was said. */
export type TourStep = { user_id: string; prompt: string } | 'settle';

/**
 * The seeds' technology-interest conversation: user u1 says what interests them over two
 * requests; once engram has reflected, u1's question is answered with those memories, while a
 * new user, u2, asking the same gets none.
 */
export const tour: TourStep[] = [
  { user_id: 'u1', prompt: 'I am interested in cloud services, AWS and Azure.' },
  { user_id: 'u1', prompt: 'These days I am into AI agents.' },
  'settle',
  { user_id: 'u1', prompt: 'List three recommended technology topics.' },
  { user_id: 'u2', prompt: 'List three recommended technology topics.' },
];
