import { parseJson } from './errors.ts';
import type { Platform } from './platform.ts';

export const platform: Platform = {
  // XMLHttpRequest: fetch reports no upload progress, and browsers stream request bodies
  // only over HTTP/2, if at all.
  upload: ({ url, body, headers, credentials, onProgress, signal }) =>
    new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open('POST', url);
      request.withCredentials = credentials === 'include';
      for (const [name, value] of Object.entries(headers)) request.setRequestHeader(name, value);
      if (onProgress) {
        request.upload.onprogress = (event) =>
          onProgress(event.loaded, event.lengthComputable ? event.total : body.size);
      }
      request.onload = () => resolve({ status: request.status, body: parseJson(request.responseText) });
      request.onerror = () => reject(new TypeError('The upload failed before a response arrived.'));
      request.onabort = () => reject(signal?.reason);
      signal?.addEventListener('abort', () => request.abort(), { once: true });
      request.send(body);
    }),
};
