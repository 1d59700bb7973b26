# 居民电子健康档案 · 微信公众号后端
#   make demo   建立虚拟环境、安装、建库、生成合成档案并启动演示服务
#   make test   运行全部测试
#   make bench  运行性能基准（结果写入 bench/results/）
#   make lint   代码检查

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "需要 Python 3.11 或更高版本"; exit 2; }
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "需要 Python 3.11 或更高版本")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/wechat-backend demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/wechat_endpoint.py
	$(BIN)/python bench/binding.py
	$(BIN)/python bench/mismatch_timing.py
	$(BIN)/python bench/records.py --find-rate
	$(BIN)/python bench/notify.py
	$(BIN)/python bench/stats.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) data dist build .pytest_cache .ruff_cache
