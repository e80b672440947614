import { useEffect, useState, useSyncExternalStore } from "react";
import type { ApiClient } from "../api/client";
import { UploadManager, type UploadCallbacks, type UploadEntry } from "./uploadManager";

/** The upload queue of one panel: its entries, re-rendered as they change, and its actions. */
export function useUploads(api: ApiClient, callbacks: UploadCallbacks): { entries: UploadEntry[]; manager: UploadManager } {
  const [manager] = useState(() => new UploadManager(api));
  useEffect(() => {
    manager.callbacks = callbacks;
  });
  useEffect(() => {
    manager.start();
    return () => manager.dispose();
  }, [manager]);
  const entries = useSyncExternalStore(manager.subscribe, manager.getSnapshot);
  return { entries, manager };
}
