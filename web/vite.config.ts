import { defineConfig } from 'vite';

// Built into web/dist, which the Firebase Hosting emulator (and Hosting in production) serves.
export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The Firebase SDK (Auth, Firestore, Functions) is most of the bundle.
    chunkSizeWarningLimit: 800,
  },
  server: { host: '127.0.0.1', port: 5173, strictPort: true },
});
