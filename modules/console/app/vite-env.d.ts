// Vite's types for what the app imports besides code (the stylesheet).
/// <reference types="vite/client" />
