// Stylesheets are bundled by esbuild (server/studio/build.ts); importing one yields nothing.
declare module '*.css';
