"""Each institution's permanent QR code and its A4 poster (关注 → 绑定档案 → 查看)."""
