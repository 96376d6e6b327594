mod placeholder {}
mod web;
