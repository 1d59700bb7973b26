// Every page but the bind form forgets what was typed into it (kept for one failed try only).
try { sessionStorage.removeItem("wb-bind-typed"); } catch (e) {}
