# Convenience targets; each one is the same as the dev.py command it names.
.PHONY: demo test
demo:
	python3 dev.py demo
test:
	python3 dev.py test
