// readers.weighted_file: the loader (epoch orders, shards, coins), the bad-image policy and
// the operator (reading in the pipeline's threads), and the schema.
#include "cmo_reader.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <stdexcept>
#include <unordered_set>
#include <utility>

#include <sys/stat.h>

#include "cmo_epoch_rng.h"
#include "dali/core/small_vector.h"
#include "dali/pipeline/operator/common.h"

namespace dali_cmo {

namespace {

const char kSkipHint[] =
    "; remove or replace the file, scan the whole dataset with `python -m dali_cmo check "
    "<dataset> --decode`, or train with on_bad_image='skip'";

/** Throws `what` (std::invalid_argument: DALI shows the message as it is) unless `ok`. */
template <typename... Parts>
void Require(bool ok, const Parts &...what) {
  if (!ok) throw std::invalid_argument(dali::make_string(what...));
}

std::string JoinRoot(const std::string &root, const std::string &path) {
  if (root.empty() || (!path.empty() && path[0] == '/')) return path;
  std::string base = root;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  return base + "/" + path;
}

std::string Trim(const std::string &text) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) begin++;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) end--;
  return text.substr(begin, end - begin);
}

/** Parses the label token of a list line (`where`: "<list>:<line>", for messages). */
int32_t ParseLabel(const std::string &token, const std::string &where) {
  size_t used = 0;
  long long label = -1;
  try {
    label = std::stoll(token, &used);
  } catch (const std::exception &) {
    used = 0;
  }
  Require(used == token.size() && used > 0, where, ": label '", token, "' is not an integer");
  Require(label >= 0, where, ": label ", label, " is negative");
  Require(label <= std::numeric_limits<int32_t>::max(), where, ": label ", label,
          " does not fit in int32");
  return static_cast<int32_t>(label);
}

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)); }

/** The values of a one-dimensional float32 or float64 `.npy` file, as float64, checked. */
std::vector<double> ReadWeightsFile(const std::string &path, int64_t expected) {
  FileContent content;
  auto problem = content.Load(path, true);
  Require(!problem, "weights_file ", path, ": ", problem.value_or(""));
  const char *data = reinterpret_cast<const char *>(content.data());
  const size_t size = content.size();
  const char kMagic[] = "\x93NUMPY";
  Require(size >= 10 && std::memcmp(data, kMagic, 6) == 0, "weights_file ", path,
          ": not a .npy file (numpy.save's format)");
  const int major = static_cast<uint8_t>(data[6]);
  Require(major >= 1 && major <= 3, "weights_file ", path, ": unknown .npy version ", major);
  size_t header_size = major == 1 ? 2 : 4, header_length = 0;
  Require(size >= 8 + header_size, "weights_file ", path, ": truncated .npy header");
  for (size_t k = 0; k < header_size; k++)  // little endian
    header_length |= static_cast<size_t>(static_cast<uint8_t>(data[8 + k])) << (8 * k);
  const size_t offset = 8 + header_size + header_length;
  Require(size >= offset, "weights_file ", path, ": truncated .npy header");
  const std::string header(data + 8 + header_size, header_length);
  auto field = [&](const std::string &key) {  // the text after 'key': up to the next ',' or '}'
    size_t at = header.find("'" + key + "':");
    Require(at != std::string::npos, "weights_file ", path, ": .npy header lacks '", key, "'");
    at += key.size() + 3;
    size_t stop = key == "shape" ? header.find(')', at) + 1 : header.find_first_of(",}", at);
    return Trim(header.substr(at, stop - at));
  };
  const std::string descr = field("descr"), order = field("fortran_order"), shape = field("shape");
  Require(descr == "'<f4'" || descr == "'<f8'", "weights_file ", path,
          ": weights must be little-endian float32 or float64, not ", descr);
  Require(order == "False", "weights_file ", path, ": fortran_order arrays are not supported");
  size_t used = 0;
  long long count = -1;
  try {
    count = std::stoll(shape.substr(1), &used);
  } catch (const std::exception &) {
    used = 0;
  }
  Require(used > 0 && shape.substr(1 + used) == ",)", "weights_file ", path,
          ": weights must be one-dimensional, got shape ", shape);
  Require(count == expected, "weights_file ", path, " holds ", count, " weights for ", expected,
          " files");
  const size_t width = descr == "'<f4'" ? 4 : 8;
  Require(size - offset == width * count, "weights_file ", path, ": truncated: ", count,
          " weights take ", width * count, " bytes, the file holds ", size - offset);
  std::vector<double> weights(count);
  for (long long i = 0; i < count; i++) {
    if (width == 4) {
      float value;
      std::memcpy(&value, data + offset + 4 * i, 4);
      weights[i] = value;
    } else {
      std::memcpy(&weights[i], data + offset + 8 * i, 8);
    }
  }
  return weights;
}

}  // namespace

// ---------------------------------------------------------------- file list, coin

void FileList::Add(const char *path, size_t length, int32_t label) {
  bytes_.append(path, length);
  ends_.push_back(static_cast<int64_t>(bytes_.size()));
  labels_.push_back(label);
}

std::string FileList::path(int64_t i) const {
  const int64_t begin = i ? ends_[i - 1] : 0;
  std::string relative(bytes_, begin, ends_[i] - begin);
  return JoinRoot(root_, relative);
}

/**
 * Reads a split file: `relative/path <label>` per line; blank and `#` lines are skipped.
 *
 * The file is read a block at a time (memory: a block, not the file) and its lines found
 * with memchr; a label of plain digits is read in place, anything else goes through
 * ParseLabel (and its messages). No string is built per line unless the line is malformed.
 */
void FileList::ReadList(const std::string &list) {
  FILE *in = std::fopen(list.c_str(), "r");
  Require(in != nullptr, "cannot open file_list ", list);
  std::unique_ptr<FILE, int (*)(FILE *)> closing(in, std::fclose);
  struct stat info;
  if (::fstat(fileno(in), &info) == 0) {
    // upper bounds (a line takes at least 4 bytes): capacity never touched costs no memory,
    // and no reallocation copies what was read
    bytes_.reserve(info.st_size);
    ends_.reserve(info.st_size / 4 + 1);
    labels_.reserve(info.st_size / 4 + 1);
  }
  int64_t number = 0;
  auto parse = [&](const char *line, size_t end) {  // one line, without its '\n'
    number++;
    size_t begin = 0;
    while (begin < end && IsSpace(line[begin])) begin++;
    while (end > begin && IsSpace(line[end - 1])) end--;
    if (begin == end || line[begin] == '#') return;
    size_t split = end;
    while (split > begin && !IsSpace(line[split - 1])) split--;
    auto where = [&] { return list + ":" + std::to_string(number); };
    if (split == begin)  // (a message's parts are built only when it is thrown)
      Require(false, where(), ": missing label (expected '<relative/path> <label>', got '",
              std::string(line + begin, end - begin), "')");
    int64_t label = 0;
    size_t k = split;
    for (; k < end && k - split < 10 && line[k] >= '0' && line[k] <= '9'; k++)
      label = label * 10 + (line[k] - '0');
    if (k != end || label > std::numeric_limits<int32_t>::max())  // signs, letters, long
      label = ParseLabel(std::string(line + split, end - split), where());
    size_t path_end = split;
    while (path_end > begin && IsSpace(line[path_end - 1])) path_end--;
    Add(line + begin, path_end - begin, static_cast<int32_t>(label));
  };
  std::vector<char> block(1 << 20);
  size_t held = 0;  // bytes of block in use: the start of a line not yet complete
  while (true) {
    if (held == block.size()) block.resize(2 * block.size());  // a line longer than a block
    size_t got = std::fread(block.data() + held, 1, block.size() - held, in);
    if (got == 0) break;  // the end (or a read error, which ends the list as getline did)
    const char *data = block.data();
    size_t size = held + got, next = 0;
    while (const char *stop = static_cast<const char *>(
               std::memchr(data + next, '\n', size - next))) {
      parse(data + next, static_cast<size_t>(stop - (data + next)));
      next = static_cast<size_t>(stop - data) + 1;
    }
    held = size - next;
    std::memmove(block.data(), data + next, held);
  }
  if (held) parse(block.data(), held);  // the last line, without a line break
  Require(size() > 0, list, ": no entries");
}

std::shared_ptr<const FileList> FileList::FromSpec(const dali::OpSpec &spec) {
  std::string root, list;
  std::vector<std::string> files;
  std::vector<int> labels;
  spec.TryGetArgument(root, "file_root");
  bool has_list = spec.TryGetArgument(list, "file_list");
  bool has_files = spec.TryGetRepeatedArgument(files, "files");
  bool has_labels = spec.TryGetRepeatedArgument(labels, "labels");
  Require(has_files != has_list, "give the samples as either `files` (with `labels`) or a "
                                 "`file_list`, not both and not neither");
  Require(!has_labels || has_files, "`labels` go with `files`; a `file_list` has its own");
  if (has_files) {
    Require(!files.empty(), "`files` is empty");
    Require(!has_labels || labels.size() == files.size(), labels.size(), " labels for ",
            files.size(), " files");
    auto out = std::make_shared<FileList>();
    out->root_ = root;
    for (size_t i = 0; i < files.size(); i++)
      out->Add(files[i].data(), files[i].size(), has_labels ? labels[i] : static_cast<int>(i));
    return out;
  }
  if (root.empty()) {  // paths are relative to the list's folder, as in fn.readers.file
    size_t slash = list.rfind('/');
    root = slash == std::string::npos ? "" : list.substr(0, slash);
  }
  struct stat info {};
  ::stat(list.c_str(), &info);
  const std::string key = dali::make_string(list, '\n', root, '\n', info.st_size, '\n',
                                            info.st_mtim.tv_sec, '.', info.st_mtim.tv_nsec);
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<const FileList>> shared;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto known = shared[key].lock()) return known;
  auto out = std::make_shared<FileList>();
  out->root_ = root;
  out->ReadList(list);
  shared[key] = out;
  return out;
}

CoinSpec CoinSpec::FromSpec(const dali::OpSpec &spec) {
  CoinSpec coin;
  coin.enabled = spec.HasArgument("coin_probability");
  coin.probability = spec.GetArgument<float>("coin_probability");
  coin.per_sample = spec.GetArgument<bool>("coin_per_sample");
  coin.stream = spec.GetArgument<std::string>("coin_stream");
  coin.skip_tails = spec.GetArgument<bool>("skip_tails");
  std::vector<int> window = spec.GetRepeatedArgument<int>("coin_epochs");
  Require(window.size() == 2 && window[0] <= window[1],
          "coin_epochs must be [first, stop) with first <= stop");
  coin.first_epoch = window[0];
  coin.stop_epoch = window[1];
  Require(coin.probability >= 0 && coin.probability <= 1,
          "coin_probability must lie in [0, 1], got ", coin.probability);
  Require(IsPlainStreamName(coin.stream),
          "coin_stream must be printable ASCII without quotes or backslashes");
  return coin;
}

// ---------------------------------------------------------------- loader

SampledFileLoader::SampledFileLoader(const dali::OpSpec &spec)
    : Loader(spec), spec_(spec), coin_(CoinSpec::FromSpec(spec)) {
  std::string sampling = spec.GetArgument<std::string>("sampling");
  Require(sampling == "permutation" || sampling == "weighted",
          "sampling must be 'permutation' or 'weighted', got '", sampling, "'");
  weighted_ = sampling == "weighted";
  Require(weighted_ || !(spec.HasArgument("weights") || spec.HasArgument("weights_file")),
          "weights apply only to sampling='weighted'");
  Require(!(spec.HasArgument("weights") && spec.HasArgument("weights_file")),
          "give the weights as either `weights` or a `weights_file`, not both");
  if (!spec.TryGetArgument(stream_, "stream")) stream_ = weighted_ ? "foreground" : "background";
  Require(IsPlainStreamName(stream_),
          "stream must be printable ASCII without quotes or backslashes");
  Require(!shuffle_, "random_shuffle does not apply: the order comes from `sampling`");
  Require(seed_ >= 0, "seed must be >= 0, got ", seed_);
  Require(!coin_.enabled || coin_.per_sample || pad_last_batch_ || coin_.probability == 0 ||
              coin_.probability == 1,
          "one coin per batch needs pad_last_batch=True (epochs must start a new batch)");
}

void SampledFileLoader::PrepareMetadataImpl() {
  files_ = FileList::FromSpec(spec_);
  if (weighted_) {
    std::vector<double> weights(files_->size(), 1.0);
    std::vector<float> given;
    std::string weights_file;
    if (spec_.TryGetArgument(weights_file, "weights_file")) {
      weights = ReadWeightsFile(weights_file, files_->size());
    } else if (spec_.TryGetRepeatedArgument(given, "weights")) {
      Require(given.size() == weights.size(), given.size(), " weights for ", weights.size(),
              " files");
      std::copy(given.begin(), given.end(), weights.begin());
    }
    draws_.emplace(weights);
  }
  Reset(true);
}

void SampledFileLoader::Reset(bool) {
  const int64_t n = files_->size();
  epoch_ = next_epoch_++;
  int shard = stick_to_shard_ ? shard_id_ : static_cast<int>((shard_id_ + epoch_) % num_shards_);
  shard_begin_ = static_cast<int64_t>(dali::start_index(shard, num_shards_, n));
  shard_size_ = static_cast<int64_t>(dali::start_index(shard + 1, num_shards_, n)) - shard_begin_;
  order_ = weighted_ ? draws_->Draw(seed_, epoch_, stream_)
                     : PermutationOrder(n, seed_, epoch_, stream_);
  position_ = 0;
}

void SampledFileLoader::RestoreStateImpl(const dali::LoaderStateSnapshot &state) {
  next_epoch_ = state.current_epoch;  // the Reset that follows starts this epoch
}

bool SampledFileLoader::Coin(int64_t position) {
  if (!coin_.enabled) return true;
  if (epoch_ < coin_.first_epoch || epoch_ >= coin_.stop_epoch || coin_.probability == 0)
    return false;
  const int64_t batch = position / max_batch_size_;
  if (batch != coin_batch_ || epoch_ != coin_epoch_) {
    // PasteSchedule.flags: epoch_generator(seed, epoch, stream name): per sample
    // f"{stream}/{shard_id}/{batch}", per batch f"{stream}/{batch}" (one coin per global step,
    // the same on every shard)
    std::string stream = coin_.per_sample
                             ? dali::make_string(coin_.stream, "/", shard_id_, "/", batch)
                             : dali::make_string(coin_.stream, "/", batch);
    EpochRng rng = EpochRng::ForEpoch(seed_, epoch_, stream);
    coin_values_.resize(coin_.per_sample ? max_batch_size_ : 1);
    for (auto &u : coin_values_) u = rng.Uniform();
    coin_epoch_ = epoch_;
    coin_batch_ = batch;
  }
  double u = coin_.per_sample ? coin_values_[position % max_batch_size_] : coin_values_[0];
  return u < coin_.probability;
}

void SampledFileLoader::ReadSample(SampledFile &sample) {
  sample.index = order_[shard_begin_ + position_];
  sample.label = files_->label(sample.index);
  sample.epoch = epoch_;
  sample.batch = position_ / max_batch_size_;
  sample.coin = Coin(position_);
  sample.wanted = sample.coin || !coin_.skip_tails;
  if (++position_ == shard_size_) Reset(true);
}

void SampledFileLoader::Skip() {
  SampledFile ignored;
  ReadSample(ignored);
}

// ---------------------------------------------------------------- bad images

BadImagePolicy::BadImagePolicy(const dali::OpSpec &spec) {
  std::string policy = spec.GetArgument<std::string>("on_bad_image");
  Require(policy == "error" || policy == "skip",
          "on_bad_image must be one of error, skip; got '", policy, "'");
  skip_ = policy == "skip";
  check_ = spec.GetArgument<bool>("quick_check");
  map_ = !spec.GetArgument<bool>("dont_use_mmap");
  spec.TryGetArgument(log_path_, "bad_files_log");
}

std::optional<std::string> BadImagePolicy::ReadChecked(const std::string &path,
                                                       FileContent &content) {
  if (skip_) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto known = bad_files_.find(path);
    if (known != bad_files_.end()) return known->second;
  }
  auto problem = content.Load(path, map_);
  if (!problem && check_) problem = QuickCheck(content.data(), content.size());
  return problem;
}

void BadImagePolicy::Record(const std::string &path, const std::string &reason, int64_t index,
                            int64_t epoch) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!bad_files_.emplace(path, reason).second || !skip_) return;
  if (log_path_.empty()) {
    std::cerr << "warning: skipping bad image " << path << " (dataset index " << index
              << ", epoch " << epoch << "): " << reason
              << "; a valid image of the same class is used in its place" << std::endl;
    return;
  }
  FILE *log = std::fopen(log_path_.c_str(), "a");
  if (log) {  // path, index, epoch, reason: one bad file per line
    std::fprintf(log, "%s\t%lld\t%lld\t%s\n", path.c_str(), static_cast<long long>(index),
                 static_cast<long long>(epoch), reason.c_str());
    std::fclose(log);
  }
}

const std::vector<int64_t> &BadImagePolicy::Members(const FileList &files, int32_t label) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = members_.find(label);
  if (found != members_.end()) return found->second;
  auto &members = members_[label];
  const auto &labels = files.labels();
  for (size_t i = 0; i < labels.size(); i++)
    if (labels[i] == label) members.push_back(static_cast<int64_t>(i));
  return members;
}

void BadImagePolicy::Load(SampledFile &sample, const FileList &files) {
  sample.read_index = sample.index;
  if (!sample.wanted) {
    sample.content.Release();
    return;
  }
  const std::string path = files.path(sample.index);
  auto problem = ReadChecked(path, sample.content);
  if (!problem) return;
  Record(path, *problem, sample.index, sample.epoch);
  if (!skip_)
    throw std::runtime_error(dali::make_string("bad image ", path, " (dataset index ",
                                               sample.index, ", epoch ", sample.epoch, ", batch ",
                                               sample.batch, "): ", *problem, kSkipHint));
  // the next valid sample of the same class, in dataset order, wrapping around
  const auto &members = Members(files, sample.label);
  size_t at = std::lower_bound(members.begin(), members.end(), sample.index) - members.begin();
  for (size_t k = 1; k < members.size(); k++) {
    int64_t candidate = members[(at + k) % members.size()];
    const std::string candidate_path = files.path(candidate);
    auto candidate_problem = ReadChecked(candidate_path, sample.content);
    if (!candidate_problem) {
      sample.read_index = candidate;
      return;
    }
    Record(candidate_path, *candidate_problem, candidate, sample.epoch);
  }
  throw std::runtime_error(dali::make_string(
      "bad image ", path, " (dataset index ", sample.index, ", epoch ", sample.epoch, "): ",
      *problem, "; and no valid image of class ", sample.label, " is left to replace it",
      kSkipHint));
}

// ---------------------------------------------------------------- operator

WeightedFileReader::WeightedFileReader(const dali::OpSpec &spec)
    : DataReader(spec), policy_(spec), coin_output_(spec.HasArgument("coin_probability")) {
  auto loader = dali::InitLoader<SampledFileLoader>(spec);
  sampled_loader_ = loader.get();
  loader_ = std::move(loader);
  this->SetInitialSnapshot();
}

void WeightedFileReader::RunImpl(dali::Workspace &ws) {
  const auto &batch = GetCurrBatch();
  const int n = static_cast<int>(batch.size());
  const FileList &files = sampled_loader_->files();
  auto &pool = ws.GetThreadPool();

  // padded batches repeat a sample object: read each object once, copy it to every place
  std::vector<std::vector<int>> places(n);
  std::unordered_map<const SampledFile *, int> first;
  for (int i = 0; i < n; i++) {
    int owner = first.emplace(batch[i].get(), i).first->second;
    places[owner].push_back(i);
    if (owner == i)
      pool.AddWork([&, i](int) { policy_.Load(*batch[i], files); });
  }
  pool.RunAll();

  auto &encoded = ws.Output<dali::CPUBackend>(0);
  dali::TensorListShape<1> shape(n);
  for (int i = 0; i < n; i++) shape.tensor_shape_span(i)[0] = batch[i]->content.size();
  encoded.Resize(shape, DALI_UINT8);
  for (int i = 0; i < n; i++) {
    if (places[i].empty()) continue;
    pool.AddWork([&, i](int) {
      FileContent &content = batch[i]->content;
      if (content.size())
        for (int place : places[i])
          std::memcpy(encoded.raw_mutable_tensor(place), content.data(), content.size());
      content.Release();
    }, batch[i]->content.size());
  }
  pool.RunAll();

  auto &labels = ws.Output<dali::CPUBackend>(1);
  auto &indices = ws.Output<dali::CPUBackend>(2);
  labels.Resize(dali::uniform_list_shape(n, dali::TensorShape<1>{1}), DALI_INT32);
  indices.Resize(dali::uniform_list_shape(n, dali::TensorShape<1>{1}), DALI_INT64);
  for (int i = 0; i < n; i++) {
    encoded.SetSourceInfo(i, files.path(batch[i]->read_index));
    labels.mutable_tensor<int32_t>(i)[0] = batch[i]->label;
    indices.mutable_tensor<int64_t>(i)[0] = batch[i]->read_index;
  }
  if (coin_output_) {
    auto &coins = ws.Output<dali::CPUBackend>(3);
    coins.Resize(dali::uniform_list_shape(n, dali::TensorShape<1>{1}), DALI_BOOL);
    for (int i = 0; i < n; i++) coins.mutable_tensor<bool>(i)[0] = batch[i]->coin;
  }
}

}  // namespace dali_cmo

DALI_REGISTER_OPERATOR(readers__WeightedFile, ::dali_cmo::WeightedFileReader, ::dali::CPU);

DALI_SCHEMA(readers__WeightedFile)
    .DocStr(R"(Reads encoded files in per-epoch sampled order: a fresh permutation of the N
samples (``sampling="permutation"``, P) or N draws with replacement, sample ``i`` with
probability ``w_i / sum(w)`` (``sampling="weighted"``, Q).

The epoch's order is a pure function of ``(seed, epoch, stream)``: the same as
``dali_cmo.data.sampling`` draws with NumPy (``PermutationSampler``/``WeightedSampler`` with
``epoch_generator(seed, epoch, stream)``), index for index. Shards are DALI's: in epoch ``e``
shard ``k`` reads positions ``[floor(k N / S), floor((k + 1) N / S))`` of the epoch's order,
``k = shard_id`` with ``stick_to_shard``, else ``(shard_id + e) % num_shards``;
``pad_last_batch`` repeats a shard's last sample up to ``ceil(N / S)`` samples and a full batch.

Outputs: the encoded bytes (uint8), the label (int32, ``[1]``), the dataset index read (int64,
``[1]``) and, when ``coin_probability`` is given, the coin (bool, ``[1]``).

Every file read is checked cheaply (empty, not an image format DALI decodes, truncated JPEG or
PNG); ``on_bad_image="error"`` fails naming the file, ``"skip"`` reads the next valid file of the
same class instead and reports each bad file once.

For a class-balanced stream give ``weights = 1 / n_{label}`` per sample (every class equally
often); ``dali_cmo.data.sampling.sample_weights`` computes the CMO schemes.)")
    .NumInput(0)
    .NumOutput(3)
    .AdditionalOutputsFn([](const dali::OpSpec &spec) {
      return spec.HasArgument("coin_probability") ? 1 : 0;
    })
    .AddOptionalArg<std::vector<std::string>>("files", R"(Paths of the samples (joined to
``file_root`` unless absolute).)", nullptr)
    .AddOptionalArg<std::vector<int>>("labels", R"(One label per file of ``files`` (default: the
file's position).)", nullptr)
    .AddOptionalArg<std::string>("file_list", R"(A split file: ``relative/path <label>`` per line,
the label being the last whitespace-separated token; blank lines and ``#`` lines are skipped.
A malformed line fails naming the file and line. Readers of one process reading the same list
share one copy of it (the paths back to back, not one string each).)", nullptr)
    .AddOptionalArg<std::string>("file_root", R"(Folder the paths are relative to (default: the
``file_list``'s folder).)", nullptr)
    .AddOptionalArg<std::string>("weights_file", R"(Per-sample weights for ``sampling="weighted"``
in a one-dimensional float32 or float64 ``.npy`` file (``numpy.save``), one per sample in list
order; memory-mapped and checked (its length and size). The by-reference twin of ``weights``:
the operator's arguments stay small whatever the list's length.)", nullptr)
    .AddOptionalArg<std::string>("sampling", R"(``"permutation"`` (each sample once per epoch) or
``"weighted"`` (N draws with replacement by ``weights``).)", "permutation")
    .AddOptionalArg<std::vector<float>>("weights", R"(Per-sample weights for
``sampling="weighted"`` (finite, >= 0, positive sum; default: all equal). Weights are float32, as
all DALI float arguments.)", nullptr)
    .AddOptionalArg<std::string>("stream", R"(Name of the random stream (default
``"background"`` for permutations, ``"foreground"`` for weighted draws, as dali_cmo's samplers).
Readers with the same seed and different streams draw independent orders.)", nullptr)
    .AddOptionalArg<std::string>("on_bad_image", R"(``"error"``: fail naming the file, its dataset
index, epoch and batch; ``"skip"``: read the next valid file of the same class instead.)", "error")
    .AddOptionalArg("quick_check", R"(Check every file read (magic number, JPEG/PNG end marker);
False passes the bytes on unchecked.)", true)
    .AddOptionalArg<std::string>("bad_files_log", R"(With ``on_bad_image="skip"``: append one line
``path<TAB>index<TAB>epoch<TAB>reason`` per bad file here instead of warning on stderr.)", nullptr)
    .AddOptionalArg("coin_probability", R"(Toss a coin per batch (or per sample), heads with this
probability, before anything is read; the coin is a fourth output. The coin of batch ``b`` of
epoch ``e`` comes from ``(seed, e, "<coin_stream>/<b>")``, the same on every shard (one coin per
global step); per sample from ``(seed, e, "<coin_stream>/<shard_id>/<b>")``, as
``dali_cmo.streams.schedule.PasteSchedule.flags``.)", 1.0f)
    .AddOptionalArg("coin_per_sample", "One coin per sample instead of one per batch.", false)
    .AddOptionalArg("coin_epochs", R"(``[first, stop)``: the epochs in which coins are tossed;
outside them every coin shows tails.)", std::vector<int>{0, std::numeric_limits<int>::max()})
    .AddOptionalArg<std::string>("coin_stream", "Name of the coins' random stream.", "coin")
    .AddOptionalArg("skip_tails", R"(Do not read the files of samples whose coin shows tails (their
bytes are empty).)", true)
    .AddParent("LoaderBase");
