-- A price's model name, as Langfuse's model definitions carry one (`modelName`): what a user
-- calls the model the pattern matches. Unset for the defaults and /v1 prices: their pattern
-- names them.
ALTER TABLE model_prices ADD COLUMN model_name text;
