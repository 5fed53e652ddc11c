// The wx version (kept equal to package.json's) and the client–daemon protocol version.
export const VERSION = '0.1.0';
