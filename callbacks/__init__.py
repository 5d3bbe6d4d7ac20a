"""Lightning callbacks for priorzero-pl: one concern per file."""
