"""The CRM org: a SQLite database in Salesforce object and field names, generated from a seed."""
