/** Shapes of the FlowChat HTTP API (docs/api.md). */

export interface Session {
  token: string;
  session_id: string;
  nickname: string;
  expires_at: string;
}

export type JobStatus = "queued" | "running" | "succeeded" | "failed";

/** How an answer was made: quoted from the documents, or written by a language model. */
export type AnswerMode = "extractive" | "generative";

export interface Citation {
  index: number;
  document_id: string;
  source: string;
  chunk: number;
  page?: number | null;
  heading?: string | null;
  score: number;
  excerpt: string;
}

export interface ChatJob {
  job_id: string;
  kind: string;
  status: JobStatus;
  conversation_id?: string | null;
  attempts: number;
  answer?: string | null;
  mode?: AnswerMode | null;
  citations?: Citation[] | null;
  partial?: string | null;
  error?: string | null;
  created_at: string;
  updated_at: string;
}

export interface SubmittedChat {
  job_id: string;
  conversation_id: string;
  status: JobStatus;
}

export interface ConversationSummary {
  id: string;
  title: string;
  message_count: number;
  created_at: string;
  updated_at: string;
}

/** A reader's verdict on an answer: helpful (`up`) or not (`down`). */
export type FeedbackRating = "up" | "down";

/** The feedback the reader gave an answer (docs/api.md, `PUT /api/chat/{job_id}/feedback`). */
export interface GivenFeedback {
  rating: FeedbackRating;
  comment?: string | null;
}

export interface Message {
  role: "user" | "assistant";
  content: string;
  citations?: Citation[] | null;
  job_id?: string | null;
  /** How an answer was made; absent on questions and on older answers. */
  mode?: AnswerMode | null;
  /** On an answer: the feedback its reader gave, if any. */
  feedback?: GivenFeedback | null;
  created_at: string;
}

export interface Conversation {
  id: string;
  title: string;
  created_at: string;
  updated_at: string;
  messages: Message[];
}

export type DocumentStatus = "pending" | "indexed" | "failed";

export interface DocumentView {
  id: string;
  name: string;
  scope: "private" | "shared";
  origin: "folder" | "upload";
  status: DocumentStatus;
  chunks: number;
  pages?: number | null;
  size_bytes: number;
  error?: string | null;
  updated_at: string;
}

export interface UploadResult {
  document_id: string;
  job_id: string | null;
  status: DocumentStatus;
  document: DocumentView;
}

/** RFC 9457 problem as the API sends it. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  request_id?: string;
  field?: string;
  rule?: string;
  limit_bytes?: number;
}
